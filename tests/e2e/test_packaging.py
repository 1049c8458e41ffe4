"""Installing SkyDNS as a developer does: ``pip install -e .`` must leave a
``twistd`` that knows the ``skydns`` plugin."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: Run with the install's site dir (argv[1]) added as a site dir (so its
#: .pth files count): whether Twisted's plugin scan finds ours.
FIND_PLUGIN = (
    "import site, sys\n"
    "sys.path[:] = [p for p in sys.path if p not in ('', sys.argv[2])]\n"
    "site.addsitedir(sys.argv[1])\n"
    "from twisted.application.service import IServiceMaker\n"
    "from twisted.plugin import getPlugins\n"
    "import twisted.plugins\n"
    "print(sorted(p.tapname for p in getPlugins(IServiceMaker, twisted.plugins)))\n"
    "print(twisted.plugins.__path__)\n"
)


class EditableInstallTests(SynchronousTestCase):
    def test_editable_install_keeps_the_plugin_visible(self) -> None:
        """``pip install -e .`` of this checkout into a prefix of its own
        (no downloads: no dependencies, no build isolation; the running
        environment's own install untouched), then Twisted's plugin scan
        from another directory, with only that install's .pth pointing at
        the checkout."""
        before = _installed()
        import importlib.util

        if importlib.util.find_spec("setuptools") is None:
            self.skipTest("setuptools is not installed in this environment")
        if (importlib.util.find_spec("setuptools.command.bdist_wheel") is None
                and importlib.util.find_spec("wheel") is None):  # fmt: skip
            self.skipTest("this setuptools (< 70.1) builds no wheel without the wheel package")
        prefix = tempfile.mkdtemp(prefix="skydns-editable-")
        installed = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
             "--no-index", "--ignore-installed", "--prefix", prefix, "-e", REPO],
            capture_output=True, text=True, timeout=300, cwd=prefix,
        )  # fmt: skip
        self.assertEqual(installed.returncode, 0, installed.stderr[-3000:])
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        site_dir = os.path.join(prefix, "lib", version, "site-packages")
        found = subprocess.run([sys.executable, "-c", FIND_PLUGIN, site_dir, REPO],
                               capture_output=True, text=True, timeout=120,
                               cwd=prefix)  # fmt: skip
        self.assertIn("'skydns'", found.stdout, found.stderr[-3000:])
        # Found in this checkout (a non-editable install elsewhere on the
        # path, as under tox, would be found anyway).
        self.assertIn(repr(os.path.join(REPO, "twisted", "plugins")), found.stdout)
        self.assertEqual(_installed(), before)


def _installed() -> str:
    """Where this environment's skydns distribution is, as pip sees it."""
    shown = subprocess.run([sys.executable, "-m", "pip", "show", "-f", "skydns"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    return shown.stdout
