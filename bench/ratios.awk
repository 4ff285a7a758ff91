# bench/ratios.awk - the benchmarks' ratio lines, one way for all of them.
#   awk -f bench/ratios.awk RESULTS SPEC
# RESULTS: "name: value unit" (or "name value") lines, and "failed name"
# lines for benchmarks that went wrong. SPEC: one line per ratio,
#   A B OP TARGET [x [RUN_A RUN_B]]
# prints "ratio A/B: R  ok|below target (target OP TARGET)"; OP is >= or
# <=; x prints R as 350x; RUN_A/RUN_B name the runs whose failure voids
# it. "limit NAME OP TARGET DIV UNIT" prints NAME/DIV against TARGET.
# Informational: the exit status is 0 whatever the figures.
FNR == NR {
  if ($1 == "failed") { bad[$2] = 1; next }
  name = $1
  sub(/:$/, "", name)
  if (name ~ /^[a-z0-9_]+$/ && $2 ~ /^[0-9.eE+-]+$/)
    v[name] = $2
  next
}
/^[ \t]*(#|$)/ { next }
$1 == "limit" {
  if (!($2 in v)) { printf "limit %s: missing\n", $2; next }
  x = v[$2] / $5
  ok = $3 == "<=" ? x <= $4 : x >= $4
  printf "limit %s: %.1f %s  %s (target %s %g %s)\n", $2, x, $6,
    ok ? "ok" : "below target", $3, $4, $6
  next
}
{
  a = $1; b = $2; op = $3; target = $4
  if (!(a in v) || !(b in v) || v[b] <= 0) {
    printf "ratio %s/%s: missing\n", a, b
    next
  }
  r = v[a] / v[b]
  if ($5 == "x") {
    text = sprintf(r >= 10 ? "%.0fx" : "%.1fx", r)
    tgt = sprintf("%gx", target)
  } else {
    text = sprintf("%.2f", r)
    tgt = sprintf("%g", target)
  }
  ok = op == "<=" ? r <= target : r >= target
  mark = ok ? "ok" : "below target"
  if ((($6 != "" ? $6 : a) in bad) || (($7 != "" ? $7 : b) in bad))
    mark = "failed benchmark"
  printf "ratio %s/%s: %s  %s (target %s %s)\n", a, b, text, mark, op, tgt
}
