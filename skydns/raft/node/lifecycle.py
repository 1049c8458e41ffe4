"""A Raft node's start and stop: its log, hard state and snapshot read back,
the state machine restored and the core built over them (`restore`); the
durable note of a recovery (SPEC §11); and the last save at shutdown."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Callable

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from skydns.raft.core.messages import Entry, HardState, SnapshotMeta
from skydns.raft.core.raft import RaftCore
from skydns.raft.core.ready import RestoredState
from skydns.raft.node.condition import Condition
from skydns.raft.node.machine import IStateMachine
from skydns.raft.node.options import NodeOptions
from skydns.raft.node.snapshotter import load_snapshot
from skydns.raft.storage.errors import StorageError, StorageFailure
from skydns.raft.storage.interface import IRaftStorage, Loaded

log = Logger()


def restore(
    node_id: str,
    peers: Mapping[str, str | None],
    storage: IRaftStorage,
    machine: IStateMachine,
    options: NodeOptions,
    rng: random.Random,
) -> tuple[Loaded, RaftCore, SnapshotMeta, list[Entry], Any]:
    """What ``storage`` holds, and the core built over it: (what was loaded,
    the core, the snapshot the machine was restored to, the entries after
    it, the stored snapshot to keep serving).  A node that is recovering and
    the only voter cannot be restored by anyone: `StorageError`."""
    loaded = storage.load()
    if options.joining and loaded.recovering is None and _empty(loaded):
        # A joiner's log lacks everything the cluster committed; an old
        # snapshot it is sent may even list a former member of its name
        # as a voter.  It neither votes nor campaigns until a leader has
        # brought it up to date, restarts included.
        reason = "joining: the log is empty until the leader fills it"
        storage.begin_recovery(reason)
        loaded = attrs.evolve(loaded, recovering=reason)
    snapshot, entries, stored = load_snapshot(storage, machine, loaded.snapshot, loaded.entries)
    core = RaftCore(
        node_id,
        # A node joining a running cluster starts as no member at all: it
        # learns the configuration from the leader's log or snapshot.
        [] if options.joining else sorted(peers),
        RestoredState(loaded.hard_state, tuple(entries), snapshot, snapshot.index,
                      recovering=loaded.recovering is not None),  # fmt: skip
        rng,
        election_tick=options.election_tick,
        heartbeat_tick=options.heartbeat_tick,
        max_size_per_msg=options.max_size_per_msg,
        max_inflight=options.max_inflight,
        pre_vote=options.pre_vote,
        check_quorum=options.check_quorum,
    )
    if loaded.recovering is not None and core.config.voters == {node_id}:
        storage.close()
        raise StorageError(
            f"{loaded.recovering}; this node is the only voter, so no leader can restore "
            "the entries its log lost: restore its data dir from a backup, or move the "
            "data dir away to start empty"
        )
    if loaded.recovering is not None:
        log.warn("this node does not vote until a leader has brought its log up to date "
                 "({reason})", reason=loaded.recovering)  # fmt: skip
    return loaded, core, snapshot, list(entries), stored


def _empty(loaded: Loaded) -> bool:
    return not loaded.entries and loaded.snapshot is None and loaded.hard_state == HardState()


def begin_recovery(storage: IRaftStorage, condition: Condition, reason: str) -> None:
    """The log lost entries this node acknowledged: note it durably, then
    stop voting (`StorageFailure` if the note cannot be written)."""
    storage.begin_recovery(reason)
    log.error("this node's log lost entries it acknowledged ({reason}); it will not vote "
              "until the leader has restored it", reason=reason)  # fmt: skip
    condition.recovering = reason


def end_recovery(storage: IRaftStorage, condition: Condition) -> None:
    """A leader restored the log: forget the note, then vote again."""
    storage.end_recovery()
    log.info("a leader has brought this node's log up to date: it votes from now on")
    condition.recovering = None


async def close(
    stopping: Deferred[None],
    storage: IRaftStorage,
    busy: tuple[Deferred[Any] | None, ...],
    unsaved: Callable[[], HardState | None],
) -> None:
    """Close ``storage`` once the transport has stopped and the saves and
    snapshot writes under way (``busy``) are done, saving first the hard
    state ``unsaved()`` then gives (None: nothing to save, or a failure)."""
    await stopping
    for each in busy:
        if each is not None:
            # Never two saves at once, nor a snapshot write after close.
            await Deferred.fromCoroutine(_quietly(each))
    latest = unsaved()
    if latest is not None:
        try:
            storage.save(latest, ())
        except StorageFailure as e:
            log.critical("cannot save the hard state on shutdown: {error}", error=str(e))
    storage.close()


async def _quietly(d: Deferred[Any]) -> None:
    try:
        await d
    except Exception:
        pass  # already handled (fail-stop) by its own errback
