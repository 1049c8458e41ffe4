"""DNSSEC keys: BIND's key files read, keys made as BIND makes them, key
tags and DS records as BIND and dnspython compute them."""

from __future__ import annotations

import base64
import glob
import os
import shutil
import subprocess
import tempfile

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from twisted.trial.unittest import SynchronousTestCase

from skydns.dnssec.keys import ECDSAP256SHA256, ED25519, KeyFileError, generate, load


def dnskey(key: object) -> object:
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DNSKEY,
                               key.dnskey_text().split(" IN DNSKEY ")[1])  # type: ignore[attr-defined]


class KeyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="skydns-keys-")
        self.addCleanup(shutil.rmtree, self.directory, True)

    def test_generated_keys_round_trip_and_agree_with_dnspython(self) -> None:
        """A key made for each algorithm loads back the same; its key tag and
        DS digest are dnspython's; its signatures verify."""
        for algorithm in (ECDSAP256SHA256, ED25519):
            key, base = generate("skydns.local", algorithm, self.directory)
            self.assertEqual(os.stat(base + ".private").st_mode & 0o777, 0o600)
            again = load(base + ".private", "skydns.local")
            self.assertEqual((again.public, again.tag), (key.public, key.tag))
            record = dnskey(key)
            self.assertEqual(key.tag, dns.dnssec.key_id(record))
            ds = dns.dnssec.make_ds(dns.name.from_text("skydns.local."), record, "SHA256")
            self.assertEqual(key.ds_digest(), ds.digest)
            signature = key.sign(b"data to sign")
            public = key._private.public_key()  # type: ignore[attr-defined]
            if algorithm == ED25519:
                public.verify(signature, b"data to sign")
            else:
                from cryptography.hazmat.primitives import hashes
                from cryptography.hazmat.primitives.asymmetric import ec
                from cryptography.hazmat.primitives.asymmetric.utils import (
                    encode_dss_signature,
                )

                self.assertEqual(len(signature), 64)
                der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                           int.from_bytes(signature[32:], "big"))  # fmt: skip
                public.verify(der, b"data to sign", ec.ECDSA(hashes.SHA256()))
            self.assertTrue(os.path.basename(base).startswith(
                f"Kskydns.local.+{algorithm:03d}+{key.tag:05d}"))  # fmt: skip

    def test_reads_bind_keys(self) -> None:
        """Keys made by BIND's dnssec-keygen load, with BIND's key tag and
        the DS dnssec-dsfromkey prints."""
        keygen = shutil.which("dnssec-keygen")
        dsfromkey = shutil.which("dnssec-dsfromkey")
        if keygen is None or dsfromkey is None:
            self.skipTest("BIND's dnssec-keygen is not installed (Debian: bind9-utils)")
        for algorithm in ("ECDSAP256SHA256", "ED25519"):
            made = subprocess.run([keygen, "-K", self.directory, "-a", algorithm, "-f", "KSK",
                                   "skydns.local"], capture_output=True, text=True, check=True)
            base = os.path.join(self.directory, made.stdout.strip())
            key = load(base + ".private", "skydns.local")
            self.assertEqual(key.tag, int(base.rsplit("+", 1)[1]))
            printed = subprocess.run([dsfromkey, "-2", base + ".key"], capture_output=True,
                                     text=True, check=True).stdout.strip()  # fmt: skip
            self.assertEqual(key.ds_text(), printed)

    def test_bad_key_files_are_clear_errors(self) -> None:
        key, base = generate("skydns.local", ED25519, self.directory)
        self.assertRaises(KeyFileError, load, os.path.join(self.directory, "nope"), "skydns.local")
        error = self.assertRaises(KeyFileError, load, base, "other.example")
        self.assertIn("not for other.example", str(error))
        with open(base + ".private", "a") as f:
            f.write("")
        with open(base + ".private", "w") as f:
            f.write("Private-key-format: v1.3\nAlgorithm: 8 (RSASHA256)\nPrivateKey: "
                    + base64.b64encode(b"x" * 32).decode() + "\n")
        self.assertIn("not supported", str(self.assertRaises(KeyFileError, load, base,
                                                             "skydns.local")))  # fmt: skip
        self.assertEqual(len(glob.glob(os.path.join(self.directory, "K*"))), 2)
