"""make install puts the Python client into site-packages under PREFIX
(with DESTDIR), where it finds the installed libatrium and works."""
import os
import subprocess
import sys
import tempfile
import unittest

import pyc
from pyc import gw


class Install(unittest.TestCase):

    def test_installed_client_works(self):
        with tempfile.TemporaryDirectory() as dest:
            prefix = "/usr/local"
            p = subprocess.run(
                ["make", "-s", "-C", gw.ROOT, "install", "BUILD=" + gw.BUILD,
                 "SANITIZER=" + os.environ.get("SANITIZER", ""),
                 "DESTDIR=" + dest, "PREFIX=" + prefix],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout)
            pydir = "%s%s/lib/python%d.%d/dist-packages" % ((dest, prefix) + sys.version_info[:2])
            with open(os.path.join(pydir, "atrium", "_installed.py")) as f:
                self.assertEqual(f.read(), 'LIBDIR = "%s/lib"\n' % prefix)
            store = gw.fresh_store()
            env = dict(os.environ, PYTHONPATH=pydir, ATRIUM_STORE=store,
                       # The library where make install put it, under DESTDIR.
                       ATRIUM_LIB="%s%s/lib/libatrium.so.1" % (dest, prefix))
            # The extension installed in the package is the one it uses.
            code = ("import atrium; v = atrium.Value('q', 41, name='inst'); v.add(1); "
                    "print(atrium.__file__, v.value, atrium._local.ext().__file__)")
            try:
                out = subprocess.run([sys.executable, "-c", code], env=env, cwd=dest,
                                     stdout=subprocess.PIPE, text=True, timeout=60)
                self.assertEqual(out.returncode, 0)
                path, value, ext = out.stdout.split()
                self.assertTrue(path.startswith(pydir), path)
                self.assertEqual(value, "42")
                self.assertEqual(os.path.dirname(ext), os.path.join(pydir, "atrium"))
                self.assertEqual(pyc.cli(store, "get", "inst"), "42")
            finally:
                gw.remove(store)


if __name__ == "__main__":
    pyc.main()
