"""/metrics: Prometheus' own checker (promtool check metrics, lint
included) finds no problem at all, after traffic on many routes with
errors and values of every type under names of every allowed character;
and the families are there and say what happened: requests by route and
status, a latency histogram per route, store usage, each value as a gauge
labelled with its name."""
import re
import shutil
import subprocess
import time

import gw

PROMTOOL = shutil.which("promtool")

# name -> (type, value sent, value as a gauge)
VALUES = {
    "a": ("i", -7, -7.0),
    "A.b-c_9": ("d", -2.5e-300, -2.5e-300),
    "x" * 64: ("Q", 18446744073709551615, 18446744073709551615.0),
    "q.min": ("q", -9223372036854775808, -9223372036854775808.0),
    "ratio-f": ("f", 0.1, 0.10000000149011612),
    "_flag": ("?", True, 1.0),
    "9.char": ("c", "\u00e9", 233.0),
    "byte": ("B", 255, 255.0),
}

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse(text):
    """The exposition text as {family: {"type", "help", "samples"}} where
    samples are (name, labels dict, value); fails on anything malformed,
    a sample outside a declared family, or a series given twice."""
    families = {}
    seen = set()
    current = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            families.setdefault(name, {"type": None, "help": None, "samples": []})
            families[name]["help"] = help_text
            current = name
            continue
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            families.setdefault(name, {"type": None, "help": None, "samples": []})
            families[name]["type"] = kind
            current = name
            continue
        m = SAMPLE.match(line)
        assert m, "malformed line %r" % line
        name, raw, value = m.group(1), m.group(2) or "", m.group(3)
        labels = {}
        pos = 0
        while pos < len(raw):
            lm = LABEL.match(raw, pos)
            assert lm, "malformed labels in %r" % line
            labels[lm.group(1)] = lm.group(2)
            pos = lm.end()
        family = current
        assert family is not None and (name == family or (
            families[family]["type"] == "histogram" and
            name in (family + "_bucket", family + "_sum", family + "_count"))), \
            "sample %r outside its family (%r)" % (line, family)
        key = (name, tuple(sorted(labels.items())))
        assert key not in seen, "series given twice: %r" % line
        seen.add(key)
        families[family]["samples"].append((name, labels, float(value)))
    return families


class Metrics(gw.GatewayCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        g = cls.gw
        for name, (t, v, _) in VALUES.items():
            r = g.put("/v1/values/" + name, {"type": t, "value": v})
            assert r.status == 201, (name, r)
        # Traffic on many routes, with errors of several kinds.
        assert g.put("/v1/arrays/arr", {"type": "h", "length": 3}).status == 201
        assert g.put("/v1/queues/jobs", {"maxsize": 2}).status == 201
        cls.made = [
            (g.get("/v1/values/a"), "value_get", 200),
            (g.get("/v1/values/a"), "value_get", 200),
            (g.get("/v1/values/missing"), "value_get", 404),
            (g.get("/v1/values/arr"), "value_get", 409),
            (g.get("/v1/values/bad%00name"), "value_get", 400),
            (g.put("/v1/values/a", {"type": "z"}), "value_put", 400),
            (g.post("/v1/values/_flag/add"), "value_add", 409),
            (g.post("/v1/values/a/add", {"delta": 3}), "value_add", 200),
            (g.get("/v1/arrays/arr?start=-2"), "array_get", 200),
            (g.post("/v1/queues/jobs/items", {"n": 1}), "queue_push", 201),
            (g.post("/v1/queues/jobs/pop"), "queue_pop", 200),
            (g.post("/v1/queues/jobs/pop"), "queue_pop", 204),
            (g.get("/v1/nothing/here"), "unrouted", 404),
            (g.request("PATCH", "/v1/values/a"), "unrouted", 405),
            (g.get("/v1/objects"), "objects_list", 200),
            (g.get("/v1/store"), "store_info", 200),
        ]
        for r, route, status in cls.made:
            assert r.status == status, (route, status, r)
        cls.values = dict(VALUES)
        cls.values["a"] = ("i", -4, -4.0)

    def scrape(self):
        r = self.gw.get("/metrics")
        self.assertEqual(r.status, 200)
        return r

    def scrape_until(self, check, timeout=10):
        """Scrapes until check(families) holds: a request is counted when
        it has completed, which may be just after its client has the
        answer."""
        deadline = time.monotonic() + timeout
        while True:
            families = parse(self.scrape().body.decode())
            try:
                check(families)
                return families
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def counts(self, families):
        return {(l["route"], l["status"]): v
                for _, l, v in families["atrium_http_requests_total"]["samples"]}

    def test_promtool_finds_no_problem(self):
        self.assertIsNotNone(PROMTOOL, "promtool is missing (package prometheus; "
                             "deploy/install-deps.sh installs it)")
        text = self.scrape().body
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        out = p.stdout.decode(errors="replace").strip()
        self.assertEqual((p.returncode, out), (0, ""),
                         "promtool check metrics:\n%s\n--- the text:\n%s"
                         % (out, text.decode(errors="replace")))

    def test_promtool_is_not_blind(self):
        """The checker flags what it must: the test above can fail."""
        if PROMTOOL is None:
            self.skipTest("promtool is missing (the test above fails)")
        bad = b"# HELP t_count no suffix\n# TYPE t_count counter\nt_count 1\n"
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=bad,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        self.assertNotEqual(p.returncode, 0)

    def test_content_type(self):
        ctype = self.scrape().header("Content-Type")
        self.assertEqual(ctype, "text/plain; version=0.0.4; charset=utf-8")

    def test_every_family_has_help_and_type(self):
        families = parse(self.scrape().body.decode())
        for name, f in families.items():
            self.assertTrue(name.startswith("atrium_"), name)
            self.assertIn(f["type"], ("counter", "gauge", "histogram"), name)
            self.assertTrue(f["help"], name)

    def test_requests_by_route_and_status(self):
        want = {}
        for _, route, status in self.made:
            want[(route, str(status))] = want.get((route, str(status)), 0) + 1

        def check(families):
            f = families["atrium_http_requests_total"]
            self.assertEqual(f["type"], "counter")
            got = self.counts(families)
            for key, n in want.items():
                self.assertGreaterEqual(got.get(key, 0), n, key)
        self.scrape_until(check)
        # Three more answers of one kind add exactly three.
        before = self.counts(self.scrape_until(lambda f: None))
        for _ in range(3):
            self.assertEqual(self.gw.get("/v1/values/missing").status, 404)
        key = ("value_get", "404")
        self.scrape_until(lambda f: self.assertEqual(self.counts(f)[key],
                                                     before[key] + 3))

    def test_latency_histogram(self):
        def check(families):
            f = families["atrium_http_request_duration_seconds"]
            self.assertEqual(f["type"], "histogram")
            routes = {}
            for name, labels, v in f["samples"]:
                routes.setdefault(labels["route"], []).append((name, labels, v))
            self.assertIn("value_get", routes)
            self.assertIn("unrouted", routes)
            requests = self.counts(families)
            for route, samples in routes.items():
                buckets = [(l["le"], v) for n, l, v in samples if n.endswith("_bucket")]
                self.assertGreater(len(buckets), 3, route)
                self.assertEqual(buckets[-1][0], "+Inf", route)
                bounds = [float(le) for le, _ in buckets]
                self.assertEqual(bounds, sorted(bounds), route)
                self.assertEqual(len(set(bounds)), len(bounds), route)
                counts = [v for _, v in buckets]
                self.assertEqual(counts, sorted(counts), "not cumulative: " + route)
                total = [v for n, _, v in samples if n.endswith("_count")]
                sums = [v for n, _, v in samples if n.endswith("_sum")]
                self.assertEqual(total, [counts[-1]], route)
                self.assertEqual(len(sums), 1, route)
                self.assertGreaterEqual(sums[0], 0, route)
                # Every answered request is in both families.
                answered = sum(v for (r, _), v in requests.items() if r == route)
                self.assertEqual(answered, counts[-1], route)
        self.scrape_until(check)

    def test_store_usage(self):
        objects = self.gw.objects()
        families = parse(self.scrape().body.decode())
        one = {}
        for name in ("atrium_store_capacity_bytes", "atrium_store_used_bytes",
                     "atrium_store_objects", "atrium_store_max_objects"):
            self.assertIn(name, families)
            self.assertEqual(families[name]["type"], "gauge", name)
            (sample,) = families[name]["samples"]
            one[name] = sample[2]
        store = self.gw.get("/v1/store").json
        self.assertEqual(one["atrium_store_capacity_bytes"], store["capacity"])
        self.assertGreater(one["atrium_store_used_bytes"], 0)
        self.assertLessEqual(one["atrium_store_used_bytes"],
                             one["atrium_store_capacity_bytes"])
        self.assertEqual(one["atrium_store_objects"], len(objects))
        self.assertEqual(one["atrium_store_max_objects"], store["max_objects"])

    def test_every_value_is_a_gauge(self):
        families = parse(self.scrape().body.decode())
        f = families["atrium_value"]
        self.assertEqual(f["type"], "gauge")
        got = {l["name"]: (l.get("type"), v) for _, l, v in f["samples"]}
        want = {name: (t, g) for name, (t, _, g) in self.values.items()}
        self.assertEqual(got, want)
        # Arrays and queues are not values.
        self.assertNotIn("arr", got)
        self.assertNotIn("jobs", got)

    def test_values_follow_the_store(self):
        g = self.gw
        self.assertEqual(g.put("/v1/values/tmp.v", {"type": "h", "value": -3}).status, 201)
        f = parse(self.scrape().body.decode())["atrium_value"]
        self.assertIn(("tmp.v", -3.0), [(l["name"], v) for _, l, v in f["samples"]])
        self.assertEqual(g.request("DELETE", "/v1/values/tmp.v").status, 204)
        f = parse(self.scrape().body.decode())["atrium_value"]
        self.assertNotIn("tmp.v", [l["name"] for _, l, _ in f["samples"]])


if __name__ == "__main__":
    gw.main()
