"""The black-box suite derived from SkyDNS 1's tests (test_skydns1.py),
every case, against a node keeping its registry in a real etcd
(``--store etcd``, SPEC.md §10): the API, DNS answers and differences are
the same as with SkyDNS's own Raft.  Each class gets its own etcd, as each
gets its own node there.  Skipped, saying why, where no etcd binary exists."""

from __future__ import annotations

from typing import ClassVar

import tests.e2e.test_skydns1 as v1
from tests.e2e.etcd import EtcdProcess, skip_without_etcd


class OnEtcd:
    """Start an etcd before the class's node, and give the node to it."""

    etcd: ClassVar[EtcdProcess | None] = None
    store: ClassVar[tuple[str, ...]]

    @classmethod
    def setUpClass(cls) -> None:
        skip_without_etcd()
        cls.etcd = EtcdProcess().start()
        cls.store = ("--store", f"etcd://127.0.0.1:{cls.etcd.client_port}")
        try:
            super().setUpClass()  # type: ignore[misc]
        except BaseException:
            cls.etcd.cleanup()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            super().tearDownClass()  # type: ignore[misc]
        finally:
            if cls.etcd is not None:
                cls.etcd.cleanup()


class EtcdServerTests(OnEtcd, v1.ServerTests):
    pass


class EtcdAuthenticationTests(OnEtcd, v1.AuthenticationTests):
    pass


class EtcdFixtureTests(OnEtcd, v1.FixtureTests):
    pass


class EtcdReadmeTests(OnEtcd, v1.ReadmeTests):
    pass


