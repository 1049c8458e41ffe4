"""``--config FILE``: a TOML file of settings under the flags' names, which
the command line overrides; anything it cannot take is a usage error
naming the key."""

from __future__ import annotations

import os
import tempfile

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from skydns.options import Options


class ConfigFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="skydns-config-")

    def write(self, text: str) -> str:
        path = os.path.join(self.directory, "skydns.toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_settings_come_from_the_file(self) -> None:
        """Strings, numbers, lists (comma-separated flags), on/off flags,
        dashes or underscores in keys."""
        path = self.write(
            'domain = "example.internal"\n'
            'dns = "127.0.0.1:9053"\n'
            "negative_ttl = 30\n"
            'names = "skydns1"\n'
            'forward-allow = ["127.0.0.0/8", "10.0.0.0/8"]\n'
            'nameserver = ["127.0.0.1:5353"]\n'
        )
        options = Options()
        options.parseOptions(["--config", path])
        self.assertEqual(options["domain"], "example.internal")
        self.assertEqual((options["dns"].host, options["dns"].port), ("127.0.0.1", 9053))
        self.assertEqual(options["negative-ttl"], 30)
        self.assertEqual(options["names"], "skydns1")
        self.assertTrue(options["forward-allow"].allows("10.1.2.3"))
        self.assertFalse(options["forward-allow"].allows("192.168.1.1"))

    def test_flags_win_over_the_file(self) -> None:
        path = self.write("negative-ttl = 30\nno-forward = true\n")
        options = Options()
        options.parseOptions([f"--config={path}", "--negative-ttl", "7"])
        self.assertEqual(options["negative-ttl"], 7)
        self.assertIsNone(options["upstreams"])  # no-forward from the file

    def test_mistakes_are_usage_errors_naming_the_key(self) -> None:
        for text, named in (('nameserverz = "x"\n', "nameserverz"),
                            ("dns = true\n", "dns"),
                            ('no-forward = "yes"\n', "no-forward"),
                            ("dns = [1, 2]\n", "dns"),
                            ('config = "other.toml"\n', "config"),
                            ("dns = \n", "not TOML"),
                            ('negative-ttl = "lots"\n', "negative-ttl")):  # fmt: skip
            path = self.write(text)
            error = self.assertRaises(usage.UsageError, Options().parseOptions,
                                      ["--config", path])  # fmt: skip
            self.assertIn(named, str(error), text)
        error = self.assertRaises(usage.UsageError, Options().parseOptions,
                                  ["--config", os.path.join(self.directory, "missing.toml")])
        self.assertIn("cannot read", str(error))
