/*
 * test_value.c - typed values: every type code, range edges, overflow,
 * floats, compare-and-set by version, open flags, and the history of one
 * value changed by several processes at once.
 */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static tu_fixture *fixture(void **state) {
  return *state;
}

enum vclass { SIGNED, UNSIGNED, FLOAT, BOOL, CHAR };

static const struct vtype {
  char type;
  enum vclass cls;
  int bits;
} vtypes[] = {
    {'b', SIGNED, 8},    {'B', UNSIGNED, 8},  {'h', SIGNED, 16},
    {'H', UNSIGNED, 16}, {'i', SIGNED, 32},   {'I', UNSIGNED, 32},
    {'l', SIGNED, 64},   {'L', UNSIGNED, 64}, {'q', SIGNED, 64},
    {'Q', UNSIGNED, 64}, {'f', FLOAT, 32},    {'d', FLOAT, 64},
    {'?', BOOL, 1},      {'c', CHAR, 8},
};
#define NTYPES (sizeof vtypes / sizeof vtypes[0])

static int64_t smin(int bits) {
  return bits == 64 ? INT64_MIN : -((int64_t)1 << (bits - 1));
}
static int64_t smax(int bits) {
  return bits == 64 ? INT64_MAX : ((int64_t)1 << (bits - 1)) - 1;
}
static uint64_t umax(int bits) {
  return bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
}

static atr_scalar si(int64_t i) {
  return (atr_scalar){.i = i};
}
static atr_scalar su(uint64_t u) {
  return (atr_scalar){.u = u};
}
static atr_scalar sf(double f) {
  return (atr_scalar){.f = f};
}

static void vnew(atr_store *s, const char *name, char type, atr_scalar init,
                 atr_handle *h) {
  tu_assert_rc(atr_value_open(s, name, type, ATR_CREATE | ATR_EXCL, &init, h),
               ATR_CREATED);
}

/* Reads h; asserts the raw 64 bits and the version. */
static void assert_value(const atr_handle *h, atr_scalar want,
                         uint64_t want_version) {
  atr_scalar v;
  uint64_t version;
  tu_ok(atr_value_get(h, &v, &version));
  tu_assert_u64(v.u, want.u);
  tu_assert_u64(version, want_version);
}

static uint64_t version_of(const atr_handle *h) {
  uint64_t version;
  tu_ok(atr_value_get(h, NULL, &version));
  return version;
}

/* A set that must fail with rc and change nothing. */
static void set_fails(const atr_handle *h, atr_scalar v, int rc) {
  atr_scalar before;
  uint64_t version;
  tu_ok(atr_value_get(h, &before, &version));
  tu_assert_rc(atr_value_set(h, v, 0, NULL), rc);
  assert_value(h, before, version);
}

static void add_fails(const atr_handle *h, atr_scalar delta, int rc) {
  atr_scalar before;
  uint64_t version;
  tu_ok(atr_value_get(h, &before, &version));
  tu_assert_rc(atr_value_add(h, delta, NULL, NULL), rc);
  assert_value(h, before, version);
}

/* Set v, check it reads back as v (a 'f' as v rounded to float) and that
 * the version grew. */
static void set_ok(const atr_handle *h, atr_scalar v) {
  uint64_t before = version_of(h), after;
  tu_ok(atr_value_set(h, v, 0, &after));
  assert_true(after > before);
  if (h->type == 'f')
    v.f = (double)(float)v.f;
  assert_value(h, v, after);
}

static void test_every_type_basic(void **state) {
  tu_fixture *f = fixture(state);
  for (size_t t = 0; t < NTYPES; t++) {
    const struct vtype *vt = &vtypes[t];
    char name[8] = {'v', '_', 0};
    name[2] = vt->type == '?' ? 'x' : vt->type;
    tu_case("type '%c'", vt->type);
    atr_handle h;
    atr_scalar init = vt->cls == FLOAT  ? sf(1.5)
                      : vt->cls == CHAR ? su('a')
                      : vt->cls == BOOL ? si(1)
                                        : si(5);
    vnew(f->store, name, vt->type, init, &h);
    assert_int_equal(h.kind, ATR_VALUE);
    assert_int_equal(h.type, vt->type);
    uint64_t v0 = version_of(&h);
    assert_true(v0 >= 1);
    assert_value(&h, init, v0);
    atr_info info;
    tu_ok(atr_stat(f->store, name, &info));
    assert_int_equal(info.type, vt->type);
    assert_int_equal(info.kind, ATR_VALUE);

    atr_scalar got;
    uint64_t version;
    switch (vt->cls) {
    case SIGNED:
      set_ok(&h, si(-7));
      version = version_of(&h);
      tu_ok(atr_value_add(&h, si(10), &got, &version));
      tu_assert_i64(got.i, 3);
      assert_value(&h, si(3), version);
      tu_ok(atr_value_add(&h, si(-4), &got, NULL));
      tu_assert_i64(got.i, -1);
      break;
    case UNSIGNED:
      set_ok(&h, su(7));
      tu_ok(atr_value_add(&h, si(10), &got, NULL));
      tu_assert_u64(got.u, 17);
      tu_ok(atr_value_add(&h, si(-4), &got, NULL));
      tu_assert_u64(got.u, 13);
      break;
    case FLOAT:
      set_ok(&h, sf(2.25));
      tu_ok(atr_value_add(&h, sf(0.5), &got, NULL));
      tu_assert_f64(got.f, 2.75);
      tu_ok(atr_value_add(&h, sf(-3.0), &got, NULL));
      tu_assert_f64(got.f, -0.25);
      break;
    case BOOL:
      set_ok(&h, si(0));
      set_ok(&h, si(1));
      add_fails(&h, si(1), ATR_ETYPE);
      break;
    case CHAR:
      set_ok(&h, su(0));
      set_ok(&h, su(255));
      add_fails(&h, si(1), ATR_ETYPE);
      break;
    }
    /* Each add moves the version by exactly one, and returns what a get
     * then reads. */
    if (vt->cls == SIGNED || vt->cls == UNSIGNED || vt->cls == FLOAT) {
      uint64_t before = version_of(&h), after;
      tu_ok(atr_value_add(&h, vt->cls == FLOAT ? sf(1) : si(1), &got, &after));
      tu_assert_u64(after, before + 1);
      atr_scalar want = vt->cls == SIGNED     ? si(0)
                        : vt->cls == UNSIGNED ? su(14)
                                              : sf(0.75);
      tu_assert_u64(got.u, want.u);
      assert_value(&h, want, after);
    }
  }
}

/* Integer range edges: set min/max, min-1/max+1, add past either end. */
static void test_integer_edges(void **state) {
  tu_fixture *f = fixture(state);
  for (size_t t = 0; t < NTYPES; t++) {
    const struct vtype *vt = &vtypes[t];
    if (vt->cls != SIGNED && vt->cls != UNSIGNED)
      continue;
    tu_case("type '%c'", vt->type);
    char name[8] = {'e', vt->type, 0};
    atr_handle h;
    vnew(f->store, name, vt->type, si(0), &h);
    if (vt->cls == SIGNED) {
      int64_t lo = smin(vt->bits), hi = smax(vt->bits);
      set_ok(&h, si(lo));
      add_fails(&h, si(-1), ATR_EOVERFLOW);
      add_fails(&h, si(INT64_MIN), ATR_EOVERFLOW);
      set_ok(&h, si(hi));
      add_fails(&h, si(1), ATR_EOVERFLOW);
      add_fails(&h, si(INT64_MAX), ATR_EOVERFLOW);
      if (vt->bits < 64) {
        set_fails(&h, si(lo - 1), ATR_ERANGE);
        set_fails(&h, si(hi + 1), ATR_ERANGE);
        set_fails(&h, si(INT64_MIN), ATR_ERANGE);
        set_fails(&h, si(INT64_MAX), ATR_ERANGE);
      }
      /* Back from the edges by adds. */
      atr_scalar got;
      tu_ok(atr_value_add(&h, si(-1), &got, NULL));
      tu_assert_i64(got.i, hi - 1);
      set_ok(&h, si(lo + 1));
      tu_ok(atr_value_add(&h, si(-1), &got, NULL));
      tu_assert_i64(got.i, lo);
      /* The whole range in one add. */
      tu_ok(atr_value_add(&h, si(hi), &got, NULL));
      tu_assert_i64(got.i, -1);
    } else {
      uint64_t hi = umax(vt->bits);
      set_ok(&h, su(0));
      add_fails(&h, si(-1), ATR_EOVERFLOW);
      add_fails(&h, si(INT64_MIN), ATR_EOVERFLOW);
      set_ok(&h, su(hi));
      add_fails(&h, si(1), ATR_EOVERFLOW);
      add_fails(&h, si(INT64_MAX), ATR_EOVERFLOW);
      if (vt->bits < 64) {
        set_fails(&h, su(hi + 1), ATR_ERANGE);
        set_fails(&h, su(UINT64_MAX), ATR_ERANGE); /* "-1" */
      }
      atr_scalar got;
      tu_ok(atr_value_add(&h, si(-1), &got, NULL));
      tu_assert_u64(got.u, hi - 1);
      set_ok(&h, su(1));
      tu_ok(atr_value_add(&h, si(-1), &got, NULL));
      tu_assert_u64(got.u, 0);
    }
    /* An out-of-range init creates nothing. */
    if (vt->bits < 64) {
      char bad[8] = {'r', vt->type, 0};
      atr_handle hb;
      atr_scalar init =
          vt->cls == SIGNED ? si(smax(vt->bits) + 1) : su(umax(vt->bits) + 1);
      tu_assert_rc(
          atr_value_open(f->store, bad, vt->type, ATR_CREATE, &init, &hb),
          ATR_ERANGE);
      atr_info info;
      tu_assert_rc(atr_stat(f->store, bad, &info), ATR_ENOENT);
    }
  }
}

static void test_q_edges(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  atr_scalar got;
  vnew(f->store, "q", 'q', si(INT64_MAX - 1), &h);
  tu_ok(atr_value_add(&h, si(1), &got, NULL));
  tu_assert_i64(got.i, INT64_MAX);
  add_fails(&h, si(1), ATR_EOVERFLOW);
  tu_ok(atr_value_add(&h, si(INT64_MIN), &got, NULL));
  tu_assert_i64(got.i, -1);
  set_ok(&h, si(1));
  add_fails(&h, si(INT64_MAX), ATR_EOVERFLOW);
  set_ok(&h, si(-2));
  add_fails(&h, si(INT64_MIN), ATR_EOVERFLOW);
  tu_ok(atr_value_add(&h, si(INT64_MIN + 2), &got, NULL));
  tu_assert_i64(got.i, INT64_MIN);

  /* 2^53 + 1 is not a double: it must not pass through one. */
  int64_t big = ((int64_t)1 << 53) + 1;
  set_ok(&h, si(big));
  tu_ok(atr_value_add(&h, si(2), &got, NULL));
  tu_assert_i64(got.i, big + 2);
  set_ok(&h, si(-big));
  set_ok(&h, si(INT64_MAX - 1));
  set_ok(&h, si(INT64_MIN + 1));
}

static void test_Q_edges(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  atr_scalar got;
  vnew(f->store, "Q", 'Q', su(UINT64_MAX - 1), &h);
  tu_ok(atr_value_add(&h, si(1), &got, NULL));
  tu_assert_u64(got.u, UINT64_MAX);
  add_fails(&h, si(1), ATR_EOVERFLOW);
  tu_ok(atr_value_add(&h, si(INT64_MIN), &got, NULL));
  tu_assert_u64(got.u, UINT64_MAX - ((uint64_t)1 << 63));
  /* Climbing above INT64_MAX by positive deltas. */
  set_ok(&h, su(0));
  tu_ok(atr_value_add(&h, si(INT64_MAX), &got, NULL));
  tu_ok(atr_value_add(&h, si(INT64_MAX), &got, NULL));
  tu_assert_u64(got.u, UINT64_MAX - 1);
  tu_ok(atr_value_add(&h, si(1), &got, NULL));
  tu_assert_u64(got.u, UINT64_MAX);
  add_fails(&h, si(1), ATR_EOVERFLOW);
  /* Down from the top by a big negative delta, and one too far. */
  set_ok(&h, su((uint64_t)1 << 63));
  tu_ok(atr_value_add(&h, si(INT64_MIN), &got, NULL));
  tu_assert_u64(got.u, 0);
  set_ok(&h, su(((uint64_t)1 << 63) - 1));
  add_fails(&h, si(INT64_MIN), ATR_EOVERFLOW);

  uint64_t big = ((uint64_t)1 << 53) + 1;
  set_ok(&h, su(big));
  tu_ok(atr_value_add(&h, si(2), &got, NULL));
  tu_assert_u64(got.u, big + 2);
  set_ok(&h, su(UINT64_MAX - 2));
}

static void test_floats(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle hd, hf;
  vnew(f->store, "d", 'd', sf(0), &hd);
  vnew(f->store, "f", 'f', sf(0), &hf);
  static const char *const labels[] = {"d", "f"};
  const atr_handle *hs[] = {&hd, &hf};
  for (int k = 0; k < 2; k++) {
    const atr_handle *h = hs[k];
    tu_case("type '%s'", labels[k]);
    set_fails(h, sf(NAN), ATR_ERANGE);
    set_fails(h, sf(-NAN), ATR_ERANGE);
    set_fails(h, sf(INFINITY), ATR_ERANGE);
    set_fails(h, sf(-INFINITY), ATR_ERANGE);
    set_ok(h, sf(-0.0));
    set_ok(h, sf(1.0));
    add_fails(h, sf(NAN), ATR_EOVERFLOW);
    add_fails(h, sf(INFINITY), ATR_EOVERFLOW);
    add_fails(h, sf(-INFINITY), ATR_EOVERFLOW);
  }
  tu_case("type 'd'");
  set_ok(&hd, sf(DBL_MAX));
  add_fails(&hd, sf(DBL_MAX), ATR_EOVERFLOW);
  set_ok(&hd, sf(-DBL_MAX));
  add_fails(&hd, sf(-DBL_MAX), ATR_EOVERFLOW);
  set_ok(&hd, sf(0.1));
  set_ok(&hd, sf(DBL_MIN / 4)); /* subnormals are finite */
  set_ok(&hd, sf(1e300));

  tu_case("type 'f'");
  set_fails(&hf, sf(1e39), ATR_ERANGE);
  set_fails(&hf, sf(-1e39), ATR_ERANGE);
  set_fails(&hf, sf(DBL_MAX), ATR_ERANGE);
  set_ok(&hf, sf(FLT_MAX));
  add_fails(&hf, sf(FLT_MAX), ATR_EOVERFLOW);
  /* Finite as a double, but not as a float. */
  set_ok(&hf, sf(3e38));
  add_fails(&hf, sf(3e38), ATR_EOVERFLOW);
  set_ok(&hf, sf(-FLT_MAX));
  add_fails(&hf, sf(-FLT_MAX), ATR_EOVERFLOW);
  /* A 'f' keeps float precision: 0.1 reads back as (float)0.1. */
  uint64_t before = version_of(&hf), after;
  tu_ok(atr_value_set(&hf, sf(0.1), 0, &after));
  assert_true(after > before);
  atr_scalar got;
  tu_ok(atr_value_get(&hf, &got, NULL));
  tu_assert_f64(got.f, (double)(float)0.1);
  tu_ok(atr_value_add(&hf, sf(0.1), &got, NULL));
  tu_assert_f64(got.f, (double)((float)0.1 + (float)0.1));
  /* Init out of range creates nothing. */
  atr_handle hb;
  atr_scalar bad = sf(NAN);
  tu_assert_rc(atr_value_open(f->store, "fnan", 'd', ATR_CREATE, &bad, &hb),
               ATR_ERANGE);
  bad = sf(1e39);
  tu_assert_rc(atr_value_open(f->store, "fbig", 'f', ATR_CREATE, &bad, &hb),
               ATR_ERANGE);
  atr_info info;
  tu_assert_rc(atr_stat(f->store, "fnan", &info), ATR_ENOENT);
  tu_assert_rc(atr_stat(f->store, "fbig", &info), ATR_ENOENT);
}

static void test_bool_char(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle hb, hc;
  vnew(f->store, "b", '?', si(0), &hb);
  vnew(f->store, "c", 'c', su(0), &hc);
  set_ok(&hb, si(1));
  set_ok(&hb, si(0));
  set_fails(&hb, si(2), ATR_ERANGE);
  set_fails(&hb, si(-1), ATR_ERANGE);
  set_fails(&hb, si(INT64_MIN), ATR_ERANGE);
  add_fails(&hb, si(1), ATR_ETYPE);
  add_fails(&hb, si(0), ATR_ETYPE);
  for (unsigned c = 0; c < 256; c++)
    set_ok(&hc, su(c));
  set_fails(&hc, su(256), ATR_ERANGE);
  set_fails(&hc, su(UINT64_MAX), ATR_ERANGE);
  add_fails(&hc, si(1), ATR_ETYPE);
  atr_handle hx;
  atr_scalar two = si(2);
  tu_assert_rc(atr_value_open(f->store, "b2", '?', ATR_CREATE, &two, &hx),
               ATR_ERANGE);
}

/* ------------------------------------------------------- compare-and-set */

static void test_compare_and_set(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  vnew(f->store, "cas", 'q', si(10), &h);
  uint64_t v1 = version_of(&h), v2, v3;
  tu_ok(atr_value_set(&h, si(11), v1, &v2));
  assert_true(v2 > v1);
  assert_value(&h, si(11), v2);
  /* Stale: the version has moved on. */
  tu_assert_rc(atr_value_set(&h, si(99), v1, &v3), ATR_EVERSION);
  assert_value(&h, si(11), v2);
  /* A version not reached yet. */
  tu_assert_rc(atr_value_set(&h, si(99), v2 + 1, NULL), ATR_EVERSION);
  tu_assert_rc(atr_value_set(&h, si(99), UINT64_MAX, NULL), ATR_EVERSION);
  assert_value(&h, si(11), v2);
  /* An add moves the version: the old one no longer matches. */
  tu_ok(atr_value_add(&h, si(1), NULL, &v3));
  tu_assert_rc(atr_value_set(&h, si(99), v2, NULL), ATR_EVERSION);
  assert_value(&h, si(12), v3);
  /* A failed set (range) with the right version changes nothing either. */
  atr_handle hb;
  vnew(f->store, "casb", 'b', si(1), &hb);
  uint64_t vb = version_of(&hb);
  tu_assert_rc(atr_value_set(&hb, si(1000), vb, NULL), ATR_ERANGE);
  assert_value(&hb, si(1), vb);
  tu_ok(atr_value_set(&hb, si(-5), vb, NULL));
  /* Same for floats. */
  atr_handle hd;
  vnew(f->store, "casd", 'd', sf(1.0), &hd);
  uint64_t vd = version_of(&hd);
  tu_ok(atr_value_set(&hd, sf(2.0), vd, NULL));
  tu_assert_rc(atr_value_set(&hd, sf(3.0), vd, NULL), ATR_EVERSION);
  atr_scalar got;
  tu_ok(atr_value_get(&hd, &got, NULL));
  tu_assert_f64(got.f, 2.0);
}

/* ------------------------------------------------- history under contention */

/* One acknowledged change, as its process saw it: the version it made,
 * the value it left, and what it was made from: an add's step, or the
 * value a set had read at the version it expected. */
struct change {
  uint64_t version;
  atr_scalar after, read;
  uint8_t is_set;
};

enum { HIST_ADDERS = 3, HIST_ADDS = 100000, HIST_SETS = 100000 };
#define HIST_PROCS (HIST_ADDERS + 1)
#define HIST_LOG (HIST_ADDS > HIST_SETS ? HIST_ADDS : HIST_SETS)

/* What the processes of one case share: its log, mapped before the fork. */
struct hist {
  const char *path;
  char type;
  int index; /* this child's: < HIST_ADDERS adds, else sets */
  int go[2];
  struct change *log; /* HIST_PROCS runs of HIST_LOG entries */
  uint64_t *count;    /* entries each child logged */
};

/* The case's add: a small step of the value's type, never zero. */
static atr_scalar hist_delta(char type, long i) {
  long step = i % 7 - 3;
  step = step != 0 ? step : 4;
  return type == 'd' ? sf((double)step * 0.5) : si(step);
}

/* The value a set writes, from the value it read: anything but a step. */
static atr_scalar hist_next(char type, atr_scalar read) {
  return type == 'd' ? sf(read.f * 0.5 - 11.25) : si(read.i / 2 - 11);
}

static int hist_child(void *arg) {
  struct hist *a = arg;
  atr_store *s = tu_child_open(a->path);
  struct change *log = a->log + (size_t)a->index * HIST_LOG;
  atr_handle h;
  char c;
  uint64_t n = 0;
  TU_CHILD_CHECK(atr_value_open(s, "hist", a->type, 0, NULL, &h) == 0);
  TU_CHILD_CHECK(tu_read_full(a->go[0], &c, 1, 30) == 0);
  if (a->index < HIST_ADDERS) {
    for (long i = 0; i < HIST_ADDS; i++, n++) {
      struct change *ch = &log[n];
      ch->read = hist_delta(a->type, i);
      TU_CHILD_CHECK(atr_value_add(&h, ch->read, &ch->after, &ch->version) ==
                     0);
    }
  } else {
    for (long i = 0; i < HIST_SETS; i++) {
      struct change *ch = &log[n];
      uint64_t seen;
      TU_CHILD_CHECK(atr_value_get(&h, &ch->read, &seen) == 0);
      ch->after = hist_next(a->type, ch->read);
      int rv = atr_value_set(&h, ch->after, seen, &ch->version);
      TU_CHILD_CHECK(rv == 0 || rv == ATR_EVERSION);
      if (rv == 0) {
        /* A set moves the version it expected on by exactly one. */
        TU_CHILD_CHECK(ch->version == seen + 1);
        ch->is_set = 1;
        n++;
      }
    }
  }
  a->count[a->index] = n;
  atr_store_close(s);
  return 0;
}

static int change_cmp(const void *x, const void *y) {
  const struct change *a = x, *b = y;
  return a->version < b->version ? -1 : a->version > b->version;
}

/*
 * Adders and a setter on one value at once; each process logs every
 * change it was told it made. Put in version order, the log must be the
 * value's whole history: one change per version with no version twice or
 * missing, each add leaving the value before it plus its step, each set
 * made against exactly the value it had read (a set that won
 * against a version already passed would show here), and the last entry
 * equal to what a get reads.
 */
static void test_history_exact(void **state) {
  static const char types[] = {'q', 'd'};
  tu_fixture *f = fixture(state);
  size_t log_size = sizeof(struct change) * HIST_PROCS * HIST_LOG;
  struct change *log = mmap(NULL, log_size, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  uint64_t *count =
      mmap(NULL, sizeof *count * HIST_PROCS, PROT_READ | PROT_WRITE,
           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(log != MAP_FAILED && count != MAP_FAILED);
  for (size_t t = 0; t < sizeof types; t++) {
    char type = types[t];
    tu_case("type '%c'", type);
    char name[8] = "hist";
    atr_handle h;
    atr_scalar cur = type == 'd' ? sf(0.5) : si(1);
    uint64_t v0;
    vnew(f->store, name, type, cur, &h);
    v0 = version_of(&h);
    memset(log, 0, log_size);
    struct hist args[HIST_PROCS];
    pid_t pids[HIST_PROCS];
    int go[2];
    tu_pipe(go);
    for (int i = 0; i < HIST_PROCS; i++) {
      args[i] = (struct hist){.path = f->path,
                              .type = type,
                              .index = i,
                              .log = log,
                              .count = count};
      memcpy(args[i].go, go, sizeof go);
      count[i] = 0;
      pids[i] = tu_spawn(hist_child, &args[i]);
    }
    char start[HIST_PROCS];
    memset(start, 'g', sizeof start);
    assert_int_equal(tu_write_full(go[1], start, sizeof start), 0);
    for (int i = 0; i < HIST_PROCS; i++)
      assert_int_equal(tu_wait(pids[i], 120), 0);
    tu_close_pipe(go);

    /* Pack the logs together and put them in version order. */
    size_t n = 0;
    for (int i = 0; i < HIST_PROCS; i++) {
      memmove(log + n, log + (size_t)i * HIST_LOG, sizeof *log * count[i]);
      n += count[i];
    }
    qsort(log, n, sizeof *log, change_cmp);
    uint64_t sets = 0;
    for (size_t k = 0; k < n; k++) {
      const struct change *ch = &log[k];
      tu_assert_u64(ch->version, v0 + 1 + k);
      if (ch->is_set) {
        tu_assert_u64(ch->read.u, cur.u);
        sets++;
      } else if (type == 'd') {
        tu_assert_f64(ch->after.f, cur.f + ch->read.f);
      } else {
        tu_assert_i64(ch->after.i, cur.i + ch->read.i);
      }
      cur = ch->after;
    }
    tu_assert_u64(n - sets, (uint64_t)HIST_ADDERS * HIST_ADDS);
    assert_true(sets > 0);
    assert_value(&h, cur, v0 + n);
    print_message("'%c': %llu adds, %llu of %d sets won\n", type,
                  (unsigned long long)(n - sets), (unsigned long long)sets,
                  HIST_SETS);
    tu_ok(atr_delete(f->store, name, ATR_VALUE));
  }
  munmap(log, log_size);
  munmap(count, sizeof *count * HIST_PROCS);
}

/* ------------------------------------------------------------ open flags */

static void test_open_flags(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h, h2;
  atr_scalar init = si(3);
  tu_assert_rc(atr_value_open(f->store, "v", 'i', ATR_CREATE, &init, &h),
               ATR_CREATED);
  /* Existing: 0, init ignored. */
  init = si(77);
  tu_assert_rc(atr_value_open(f->store, "v", 'i', ATR_CREATE, &init, &h2), 0);
  assert_value(&h2, si(3), version_of(&h));
  assert_int_equal(h2.id, h.id);
  tu_assert_rc(atr_value_open(f->store, "v", 'i', 0, NULL, &h2), 0);
  tu_assert_rc(
      atr_value_open(f->store, "v", 'i', ATR_CREATE | ATR_EXCL, &init, &h2),
      ATR_EEXIST);
  /* Wrong type; type 0 opens any. */
  tu_assert_rc(atr_value_open(f->store, "v", 'q', 0, NULL, &h2), ATR_ETYPE);
  tu_assert_rc(atr_value_open(f->store, "v", 'I', ATR_CREATE, NULL, &h2),
               ATR_ETYPE);
  tu_assert_rc(atr_value_open(f->store, "v", 0, 0, NULL, &h2), 0);
  assert_int_equal(h2.type, 'i');
  assert_value(&h2, si(3), version_of(&h));
  /* NULL init: zero, as multiprocessing does. */
  tu_assert_rc(atr_value_open(f->store, "z", 'd', ATR_CREATE, NULL, &h2),
               ATR_CREATED);
  assert_value(&h2, sf(0.0), version_of(&h2));
  tu_assert_rc(atr_value_open(f->store, "zq", 'Q', ATR_CREATE, NULL, &h2),
               ATR_CREATED);
  assert_value(&h2, su(0), version_of(&h2));
  /* Get-or-create of an existing value: init is ignored even when it would
   * not fit, and type 0 opens it whatever its type. */
  atr_scalar too_big = si(1LL << 40);
  tu_assert_rc(atr_value_open(f->store, "v", 'i', ATR_CREATE, &too_big, &h2),
               0);
  assert_value(&h2, si(3), version_of(&h));
  tu_assert_rc(atr_value_open(f->store, "v", 0, ATR_CREATE, NULL, &h2), 0);
  assert_int_equal(h2.type, 'i');
  /* No such type code, or no type to create with: refused, nothing made. */
  atr_info info;
  assert_true(atr_value_open(f->store, "bad", 'x', ATR_CREATE, NULL, &h2) < 0);
  assert_true(atr_value_open(f->store, "bad", 0, ATR_CREATE, NULL, &h2) < 0);
  tu_assert_rc(atr_stat(f->store, "bad", &info), ATR_ENOENT);
  /* Either out-pointer of get may be NULL. */
  tu_ok(atr_value_get(&h, NULL, NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_every_type_basic, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_integer_edges, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_q_edges, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_Q_edges, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_floats, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_bool_char, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_compare_and_set, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_open_flags, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_history_exact, tu_setup,
                                      tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
