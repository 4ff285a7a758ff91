"""The Python examples of README.md and clients/python/README.md run as
written, on a fresh store, and print what they promise."""
import os
import re
import subprocess
import sys
import unittest

import pyc
from pyc import gw


def python_blocks(path):
    with open(path, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


class Readme(unittest.TestCase):

    def run_example(self, code):
        store = gw.fresh_store()
        self.addCleanup(gw.remove, store)
        env = dict(os.environ, ATRIUM_STORE=store)
        env.pop("ATRIUM_URL", None)
        p = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        return store, p.stdout

    def test_main_readme(self):
        blocks = python_blocks(os.path.join(gw.ROOT, "README.md"))
        self.assertEqual(len(blocks), 1)
        store, _ = self.run_example(blocks[0])
        self.assertEqual(pyc.cli(store, "get", "hits"), "1")

    def test_client_readme(self):
        blocks = python_blocks(os.path.join(pyc.CLIENT, "README.md"))
        self.assertGreaterEqual(len(blocks), 2)
        store, out = self.run_example(blocks[0])
        self.assertEqual(out, "4000 %r\n" % ([("done", 1)] * 4,))
        self.assertEqual(pyc.cli(store, "get", "hits"), "4000")
        # Only the named value is left: the queue went with its program.
        self.assertEqual(pyc.objects(store), {"hits"})


if __name__ == "__main__":
    pyc.main()
