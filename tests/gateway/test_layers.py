"""The gateway's layers, checked from its sources: every file includes only
the gateway headers of its own layer and below, the headers include one
another without a circle, and every file has a layer (a new file must say
where it stands). The layers are the ones gateway/buf.h lists; the one loop
the design allows (the route table and its handlers) is inside layer 4."""
import os
import re
import unittest

import gw

GATEWAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "gateway")

# Each gateway header's layer (gateway/buf.h says what each layer is).
HEADERS = {
    "buf.h": 0, "json.h": 0, "repr.h": 0, "snap.h": 0,
    "req.h": 1, "follow.h": 1,
    "auth.h": 2, "park.h": 2, "pub.h": 2, "sse.h": 2, "lease.h": 2,
    "events.h": 3,
    "routes.h": 4,
    "http.h": 5,
}
# Source files without a header of their own: the layer they belong to.
SOURCES = {
    "json_num.c": 0, "json_out.c": 0,
    "body.c": 1, "errors.c": 1, "query.c": 1,
    "values.c": 4, "arrays.c": 4, "queues.c": 4, "objects.c": 4,
    "metrics.c": 4, "web.c": 4, "locks.c": 4, "semaphores.c": 4,
    "flags.c": 4, "barriers.c": 4, "conditions.c": 4, "dicts.c": 4,
    "main.c": 6,
}
INCLUDE = re.compile(r'^#include "([^"]+)"', re.M)


def includes(name):
    with open(os.path.join(GATEWAY, name)) as f:
        return [h for h in INCLUDE.findall(f.read()) if h != "atrium.h"]


def layer_of(name):
    if name in SOURCES:
        return SOURCES[name]
    return HEADERS.get(name[:-2] + ".h" if name.endswith(".c") else name)


class Layers(unittest.TestCase):
    def files(self):
        return sorted(f for f in os.listdir(GATEWAY) if f.endswith((".c", ".h")))

    def test_every_file_has_a_layer(self):
        for name in self.files():
            with self.subTest(name):
                self.assertIsNotNone(layer_of(name), "%s has no layer here" % name)

    def test_includes_go_down(self):
        for name in self.files():
            mine = layer_of(name)
            for h in includes(name):
                with self.subTest(name=name, include=h):
                    self.assertIn(h, HEADERS, "%s includes %s, a header of no layer" % (name, h))
                    self.assertLessEqual(HEADERS[h], mine,
                                         "%s (layer %s) includes %s (layer %s)" % (
                                             name, mine, h, HEADERS[h]))

    def test_headers_form_no_circle(self):
        graph = {h: includes(h) for h in HEADERS}
        done, path = set(), []

        def visit(h):
            self.assertNotIn(h, path, "a circle: %s" % " -> ".join(path + [h]))
            if h in done:
                return
            path.append(h)
            for g in graph[h]:
                visit(g)
            path.pop()
            done.add(h)

        for h in sorted(graph):
            visit(h)

    def test_the_check_can_fail(self):
        """A header of a higher layer included from below is caught."""
        self.assertGreater(HEADERS["routes.h"], layer_of("repr.c"))
        self.assertGreater(HEADERS["park.h"], layer_of("follow.c"))


if __name__ == "__main__":
    gw.main()
