"""The composition root: ``twistd skydns`` options and the service tree.

This is the only module that imports the global reactor or knows every
part; the options it is given are `skydns.options` (which alone reads the
environment).  Everything else receives what it needs.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, NoReturn

from twisted.application import service, strports
from twisted.internet.error import CannotListenError

from skydns import config
from skydns.logging import RootService
from skydns.options import TICK_MS, Options
from skydns.patterns import ORDERS


class _Node(RootService):
    """The process's service tree: a port it cannot listen on stops the start
    with one line naming the address, not a traceback.

    Run as a daemon (no ``-n``), twistd's original process waits on a pipe
    for the forked daemon to say whether it started; a daemon that quits
    without saying so leaves that command waiting for ever.  So whatever
    stops the start (`refuse_start`, or a fail-stop while starting) first
    writes its reason there, and twistd prints it and exits 1.
    """

    def __init__(self, observer: Any = None, twistd: Any = None) -> None:
        super().__init__(observer)
        self._twistd = twistd
        self._starting_now = False

    def privilegedStartService(self) -> None:  # noqa: N802 - Twisted's name
        self._starting(super().privilegedStartService)

    def startService(self) -> None:  # noqa: N802 - Twisted's name
        self._starting(super().startService)

    def _starting(self, start: Callable[[], None]) -> None:
        self._starting_now = True
        try:
            start()
        except CannotListenError as e:
            where = f"{e.interface or '*'}:{e.port}"
            self.refuse_start(f"cannot listen on {where}: {e.socketError}")
        finally:
            self._starting_now = False

    def refuse_start(self, reason: str) -> NoReturn:
        sys.stderr.write(f"skydns: {reason}\n")
        self.tell_parent(reason)
        self._remove_pidfile()
        raise SystemExit(1)

    def _remove_pidfile(self) -> None:
        """twistd removes its pidfile only when the reactor shuts down; a
        start refused before that would leave a stale one behind."""
        path = None if self._twistd is None else self._twistd.get("pidfile")
        if not path:
            return
        try:
            with open(path) as f:
                if int(f.read().strip()) == os.getpid():
                    os.remove(path)
        except (OSError, ValueError):
            pass

    def tell_parent(self, reason: str) -> None:
        """While starting as a daemon: send ``reason`` to twistd's waiting
        process (in its ``1 message`` form), once."""
        if not self._starting_now or self._twistd is None:
            return
        pipe = self._twistd.get("statusPipe")
        if pipe is None:
            return
        self._twistd["statusPipe"] = None
        try:
            os.write(pipe, b"1 skydns: " + reason.encode("utf-8", "replace")[:90])
            os.close(pipe)
        except OSError:
            pass


def _rotate_on_sigusr1(observer: Any, reactor: Any) -> None:
    """SIGUSR1 rotates the log file, as it does for twistd's own log (and as
    logrotate's ``postrotate`` for twistd programs expects).  twistd installs
    its handler only for the log it opens itself; without one the signal's
    default action would end the process."""
    import signal

    def rotate(signum: int, frame: object) -> None:
        reactor.callFromThread(observer.rotate)

    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, rotate)


def hand_over(path: str, twistd: Any) -> None:
    """Give the data dir, and all in it, to the user twistd will switch to
    (``-u``/``-g``): it was opened, and maybe created, while still root,
    and the node must go on writing there (snapshots, new segments) after
    privileges are dropped."""
    uid = None if twistd is None else twistd.get("uid")
    gid = None if twistd is None else twistd.get("gid")
    if os.getuid() != 0 or (uid is None and gid is None):
        return
    if uid is not None and gid is None:
        import pwd

        gid = pwd.getpwuid(uid).pw_gid
    owner, group = -1 if uid is None else uid, -1 if gid is None else gid
    os.chown(path, owner, group)
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(top, name), owner, group, follow_symlinks=False)


def makeService(options: Options) -> service.MultiService:
    """Build the whole node: registry, cluster, DNS, HTTP API and timers."""
    import treq
    from prometheus_client import disable_created_metrics
    from twisted.application.internet import TimerService
    from twisted.internet import reactor

    from skydns.audit import RegistryLog
    from skydns.callbacks import CallbackNotifier
    from skydns.dns.assemble import build_dns
    from skydns.dns.workers.supervisor import DNSWorkers
    from skydns.gctune import THAW_INTERVAL, thaw, tune_gc
    from skydns.http.api import make_api
    from skydns.http.site import make_site
    from skydns.logging import log_observer
    from skydns.metrics import Metrics
    from skydns.registry import Registry
    from skydns.watch.hub import WatchHub

    tune_gc()
    disable_created_metrics()
    metrics = Metrics()
    observer = log_observer(
        options["log-format"], options["log-level"], twistd=options.parent, reactor=reactor,
        rotate_size=options["log-rotate-size"], keep=options["log-keep"],
    )  # fmt: skip
    if observer is not None:
        # Lines of the last reactor turns (services stopping) are written
        # before the process ends; after the reactor stops each line is
        # written at once.
        reactor.addSystemEventTrigger("after", "shutdown", observer.flush)
        if observer.rotates:
            _rotate_on_sigusr1(observer, reactor)
    top = _Node(observer, twistd=options.parent)
    registry = Registry()
    metrics.watch_instances(lambda: len(registry))
    if options["etcd"] is not None:
        from skydns.store.etcd.cluster import build_etcd_cluster

        cluster, node = build_etcd_cluster(options["etcd"], options["node-id"], registry, reactor)
        node.setServiceParent(top)
        unavailable = cluster.unavailable
        metrics.watch_leases(registry.lease_count, lambda: len(cluster.mirror.ttls))
    else:
        cluster = _raft_cluster(options, registry, reactor, metrics, top)
        unavailable = None
    cluster.add_apply_listener(metrics.on_applied)
    cluster.add_apply_listener(RegistryLog().on_applied)
    cluster.add_apply_listener(CallbackNotifier(treq, clock=reactor).on_applied)
    TimerService(THAW_INTERVAL, thaw).setServiceParent(top)

    dns_service = build_dns(options, registry, reactor, metrics,
                            reuse_port=options["dns-workers"] > 0,
                            unavailable=unavailable)  # fmt: skip
    dns_service.setServiceParent(top)
    if options["dns-workers"]:
        host = options["dns"].host
        workers = DNSWorkers(options["dns-workers"], options.argv, registry, reactor,
                             lambda: str(config.HostPort(host, dns_service.port or 0)), metrics)
        cluster.add_apply_listener(workers.on_applied)
        workers.setServiceParent(top)
    names = ORDERS[options["names"]]
    dns_address: config.HostPort = options["dns"]

    watches = WatchHub(registry)
    metrics.watch_watchers(lambda: len(watches))
    api = make_api(
        cluster, reactor, options["domain"], secret=options["secret"], metrics=metrics,
        max_instances_per_name=options["max-instances-per-name"], names=names,
        dns_address=str(dns_address), watches=watches,
    )  # fmt: skip
    site = make_site(
        api.resource(), options["access-log"], options["max-http-connections"], reactor
    )
    strports.service(options["http"], site).setServiceParent(top)  # type: ignore[arg-type]
    return top


def _raft_cluster(options: Options, registry: Any, reactor: Any, metrics: Any,
                  top: _Node) -> Any:  # fmt: skip
    """The node of SkyDNS's own Raft (``--store raft``), its data dir
    loaded and its lease loop started under ``top``."""
    from skydns.leases.expiry import LeaseKeeper
    from skydns.raft.node.options import NodeOptions
    from skydns.raft.storage.errors import StorageError
    from skydns.store.raft import build_cluster, exit_now

    def fail_stop(reason: str) -> None:
        top.tell_parent(reason)
        exit_now(reason)

    try:
        cluster, node = build_cluster(
            options["node-id"], options["peers"], options["raft"], options["data-dir"],
            registry, reactor, metrics=metrics, cluster_key=options["cluster-key"],
            raft_tls=options["raft-tls"], join=options["join"], fail_stop=fail_stop,
            non_voter=options["non-voter"],
            options=NodeOptions(
                tick_interval=TICK_MS / 1000,
                election_tick=options["election-timeout"] // TICK_MS,
                heartbeat_tick=options["heartbeat-interval"] // TICK_MS,
                snapshot_entries=options["snapshot-entries"],
                keep_entries=options["snapshot-keep"],
            ),
        )  # fmt: skip
    except StorageError as e:
        # Before logging starts: this goes to stderr, and twistd exits 1.
        where = "" if "data dir" in str(e) else f"data dir {options['data-dir']}: "
        raise SystemExit(f"skydns: cannot start: {where}{e}") from None
    hand_over(options["data-dir"], options.parent)
    node.setServiceParent(top)
    LeaseKeeper(cluster, reactor, lessor=cluster.lessor).setServiceParent(top)
    metrics.watch_leases(registry.lease_count, lambda: len(cluster.lessor))
    return cluster
