"""The README's curl examples, run in order against a real atriumd.

Every `curl` line of the sections "Over HTTP, with curl" and "Events" is
taken as written (continuation lines joined), pointed at a fresh daemon
through $A, and must answer 2xx; the SSE example must stream a snapshot.
The daemon runs with --max-wait 1 so that the long-poll example returns
quickly."""
import os
import re
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gateway"))
import gw  # noqa: E402

README = os.path.join(HERE, "..", "..", "README.md")


def examples():
    text = open(README, encoding="utf-8").read()
    start = text.index("## Over HTTP, with curl")
    end = text.index("## The dashboard")
    cmds = []
    for block in re.findall(r"```sh\n(.*?)```", text[start:end], re.S):
        block = block.replace("\\\n", " ")
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.startswith("curl "):
                cmds.append(line)
    return cmds


class ReadmeCurl(unittest.TestCase):
    def test_examples(self):
        cmds = examples()
        self.assertGreaterEqual(len(cmds), 12)
        g = gw.Gateway("--max-wait", "1").start()
        self.addCleanup(g.stop)
        env = dict(os.environ, A="http://127.0.0.1:%d" % g.port)
        for cmd in cmds:
            with self.subTest(cmd=cmd):
                if " -N " in cmd:
                    r = subprocess.run(cmd + " -s --max-time 1", shell=True,
                                       env=env, capture_output=True, text=True)
                    self.assertEqual(r.returncode, 28, r.stderr)  # cut by --max-time
                    self.assertIn('"op":"snapshot"', r.stdout)
                    continue
                r = subprocess.run(cmd + " -s -o /dev/null -w '%{http_code}'"
                                   " --max-time 5", shell=True, env=env,
                                   capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertRegex(r.stdout, r"^2\d\d$")


if __name__ == "__main__":
    gw.main()
