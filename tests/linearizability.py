"""A linearizability checker for client histories recorded in the Raft simulation.

Usage::

    from tests.linearizability import Operation, RegisterModel, check

    history = [
        Operation("c1", "x", "write", 1, None, call=0.0, ret=2.0),
        Operation("c2", "x", "read", None, 1, call=1.0, ret=3.0),
        Operation("c3", "x", "cas", (1, 2), True, call=4.0, ret=None),  # timed out
    ]
    result = check(history, RegisterModel())
    assert result.ok, result.detail

Records
    `Operation` is one client call: ``client``, ``key``, ``kind``, ``input``,
    ``output`` and the times ``call`` and ``ret`` at which it was invoked and
    answered.  An operation that never returned (``ret=None``, or
    ``output=UNKNOWN``: a timeout, a crashed client) may or may not have taken
    effect, at any point after its call: it is treated as returning at +infinity
    with an unconstrained output.  Intervals are closed: operations whose
    intervals touch (one returns at t, the other is called at t) count as
    concurrent, so give strictly increasing times to events you mean to order.

Models
    A `Model` has ``init() -> state`` and ``step(state, op) -> (ok, new_state)``;
    states must be hashable (they are memoized) and ``step`` must accept, in any
    state, an operation whose output is `UNKNOWN`.  A model may list
    ``read_only_kinds``: calls of those kinds that never returned are dropped
    before the search, since they cannot affect anyone.  Most models are
    deterministic: subclass `FunctionalModel` and write one method per kind,
    ``op_<kind>(state, input) -> (output, new_state)``.  Provided:
    `RegisterModel` (``read`` -> value or None, ``write`` value, ``cas``
    (old, new) -> bool) and `RegistryModel` (per-UUID SkyDNS registry:
    ``register`` service -> "ok"/"conflict", ``unregister`` -> "ok"/"not_found",
    ``get`` -> service or None).

Recording
    `Recorder` builds a history during a simulation: ``token =
    recorder.invoke(client, key, kind, input)`` when a client sends a request,
    ``recorder.complete(token, output)`` when it gets the answer (never, for a
    timeout or a crash), then ``check(recorder.history(), model)``.

Checking
    `check(history, model, timeout_steps)` partitions the history by key
    (linearizability is compositional, Herlihy & Wing 1990) and searches each key
    with the Wing & Gong algorithm as improved by Lowe ("Testing for
    linearizability", 2017) and implemented by porcupine: call/return entries in
    a doubly linked list sorted by time, just-in-time linearization (only calls
    before the first pending return are candidates), lifting and unlifting of
    linearized operations, and a cache of (linearized bitset, state) pairs.
    Each key gets a budget of ``timeout_steps`` search steps; when it runs out
    the `Result` says ``partial=True`` instead of hanging.  On a violation the
    `Result` names the key and, in ``detail`` (and ``linearized``/``stuck``),
    the longest linearizable prefix found and the operation that could not be
    linearized after it.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Hashable, Sequence
from typing import Any, ClassVar, Protocol

from attrs import define, evolve, field, frozen


class _Unknown(enum.Enum):
    UNKNOWN = "UNKNOWN"

    def __repr__(self) -> str:
        return "UNKNOWN"


#: The output of a call whose answer was never seen.
UNKNOWN = _Unknown.UNKNOWN

#: Default search budget per key.
DEFAULT_TIMEOUT_STEPS = 200_000


@frozen
class Operation:
    """One client call on one key, with the interval during which it ran."""

    client: str
    key: str
    kind: str
    input: Any
    output: Any
    call: float
    ret: float | None

    @property
    def pending(self) -> bool:
        """Whether the call never returned (it may take effect at any later time)."""
        return self.ret is None or self.output is UNKNOWN

    def describe(self) -> str:
        """A one-line rendering for failure reports."""
        output = "?" if self.pending else repr(self.output)
        ret = "..." if self.ret is None else f"{self.ret:g}"
        return f"{self.client} {self.kind}({self.input!r}) -> {output} [{self.call:g}, {ret}]"


History = Sequence[Operation]


@define
class Recorder:
    """Builds a history as a simulation runs, in logical time.

    Every `invoke` and `complete` takes the next tick of a counter, so the
    recorded order is exactly the order of events in a single-threaded
    simulation (no ties, unlike a fake clock that does not advance between
    them).  Calls never completed stay pending (``ret=None``).
    """

    _ops: list[Operation] = field(factory=list)
    _open: dict[int, Operation] = field(factory=dict)
    _tick: int = 0

    def invoke(self, client: str, key: str, kind: str, input: Any = None) -> int:
        """Record a call; return the token to pass to `complete`."""
        self._tick += 1
        token = len(self._ops)
        op = Operation(client, key, kind, input, UNKNOWN, float(self._tick), None)
        self._ops.append(op)
        self._open[token] = op
        return token

    def complete(self, token: int, output: Any) -> None:
        """Record the answer to the call ``token``."""
        self._tick += 1
        op = self._open.pop(token)
        self._ops[token] = evolve(op, output=output, ret=float(self._tick))

    def history(self) -> list[Operation]:
        """Every call so far, in invocation order."""
        return list(self._ops)


class Model(Protocol):
    """A sequential specification of one key's object."""

    def init(self) -> Any:
        """The initial (hashable) state."""

    def step(self, state: Any, op: Operation) -> tuple[bool, Any]:
        """Whether ``op`` (with its output) can happen in ``state``, and the state after it."""


class UnknownKindError(ValueError):
    """A model was given an operation kind it does not define."""


class FunctionalModel:
    """Base for deterministic models: one ``op_<kind>(state, input)`` method per kind.

    Each method returns ``(output, new_state)``.  `step` accepts an operation
    when its recorded output equals the computed one (or is `UNKNOWN`, or its
    kind is in ``ignore_output_kinds``).
    """

    read_only_kinds: ClassVar[frozenset[str]] = frozenset()
    ignore_output_kinds: ClassVar[frozenset[str]] = frozenset()

    def init(self) -> Any:
        return None

    def apply(self, state: Any, op: Operation) -> tuple[Any, Any]:
        """The output ``op`` produces in ``state`` and the state after it."""
        method = getattr(self, "op_" + op.kind, None)
        if method is None:
            raise UnknownKindError(f"{type(self).__name__} has no kind {op.kind!r}")
        output, new_state = method(state, op.input)
        return output, new_state

    def step(self, state: Any, op: Operation) -> tuple[bool, Any]:
        output, new_state = self.apply(state, op)
        if op.output is UNKNOWN or op.kind in self.ignore_output_kinds or op.output == output:
            return True, new_state
        return False, state


@frozen
class RegisterModel(FunctionalModel):
    """A read/write/compare-and-set register; a write's output is ignored."""

    read_only_kinds: ClassVar[frozenset[str]] = frozenset({"read"})
    ignore_output_kinds: ClassVar[frozenset[str]] = frozenset({"write"})

    initial: Hashable = None

    def init(self) -> Any:
        return self.initial

    def op_read(self, state: Any, _input: Any) -> tuple[Any, Any]:
        return state, state

    def op_write(self, state: Any, value: Any) -> tuple[Any, Any]:
        return None, value

    def op_cas(self, state: Any, old_new: tuple[Any, Any]) -> tuple[Any, Any]:
        old, new = old_new
        if state == old:
            return True, new
        return False, state


@frozen
class RegistryModel(FunctionalModel):
    """One registry entry (the key is the instance's UUID): absent (None) or a service."""

    read_only_kinds: ClassVar[frozenset[str]] = frozenset({"get"})

    def op_register(self, state: Any, service: Any) -> tuple[Any, Any]:
        if state is None:
            return "ok", service
        return "conflict", state

    def op_unregister(self, state: Any, _input: Any) -> tuple[Any, Any]:
        if state is None:
            return "not_found", None
        return "ok", None

    def op_get(self, state: Any, _input: Any) -> tuple[Any, Any]:
        return state, state


@frozen
class Result:
    """The verdict.

    ``ok`` is True only when every key was proven linearizable.  ``partial``
    means a key's search ran out of budget (and no other key was found
    non-linearizable): the verdict is unknown, not a violation.
    """

    ok: bool
    key: str | None
    detail: str
    partial: bool
    steps: int = 0
    #: On a violation: the longest linearizable prefix found, in order.
    linearized: tuple[Operation, ...] = ()
    #: On a violation: the completed operation that could not be linearized next.
    stuck: Operation | None = None

    @property
    def violation(self) -> bool:
        """Whether the history was proven not linearizable."""
        return not self.ok and not self.partial


@frozen
class _KeyOutcome:
    verdict: str  # "ok", "violation" or "partial"
    steps: int
    linearized: tuple[Operation, ...] = ()
    state: Any = None
    stuck: Operation | None = None
    candidates: tuple[Operation, ...] = ()


def _check_key(ops: Sequence[Operation], model: Model, budget: int) -> _KeyOutcome:
    """Lowe's just-in-time Wing & Gong search over one key's operations."""
    n = len(ops)
    model_ops = [evolve(op, output=UNKNOWN) if op.pending else op for op in ops]
    # Calls sort before returns at equal times: touching intervals are concurrent.
    events: list[tuple[float, int, int]] = []
    for i, op in enumerate(ops):
        events.append((op.call, 0, i))
        if not op.pending:
            events.append((op.ret if op.ret is not None else math.inf, 1, i))
    events.sort()
    m = len(events)
    head = m
    is_call = [kind == 0 for _, kind, _ in events]
    op_of = [i for _, _, i in events]
    call_entry = [-1] * n
    ret_entry = [-1] * n
    for e, (_, kind, i) in enumerate(events):
        if kind == 0:
            call_entry[i] = e
        else:
            ret_entry[i] = e
    # Doubly linked list over the entries, with a head sentinel at index m.
    nxt = [e + 1 for e in range(m)] + [0 if m else -1]
    prv = [e - 1 for e in range(m)] + [-1]
    if m:
        nxt[m - 1] = -1
        prv[0] = head

    def unlink(e: int) -> None:
        nxt[prv[e]] = nxt[e]
        if nxt[e] != -1:
            prv[nxt[e]] = prv[e]

    def relink(e: int) -> None:
        nxt[prv[e]] = e
        if nxt[e] != -1:
            prv[nxt[e]] = e

    remaining = sum(1 for op in ops if not op.pending)
    if remaining == 0:
        return _KeyOutcome("ok", 0)
    state = model.init()
    linearized = 0
    cache: set[tuple[int, Any]] = set()
    stack: list[tuple[int, Any]] = []
    best_depth = -1
    best = _KeyOutcome("violation", 0)
    entry = nxt[head]
    steps = 0
    while True:
        steps += 1
        if steps > budget:
            return _KeyOutcome("partial", steps - 1)
        if is_call[entry]:
            i = op_of[entry]
            ok, new_state = model.step(state, model_ops[i])
            if ok:
                new_linearized = linearized | (1 << i)
                memo = (new_linearized, new_state)
                if memo not in cache:
                    cache.add(memo)
                    stack.append((i, state))
                    state, linearized = new_state, new_linearized
                    unlink(entry)
                    if ret_entry[i] != -1:
                        unlink(ret_entry[i])
                        remaining -= 1
                        if remaining == 0:
                            return _KeyOutcome("ok", steps)
                    entry = nxt[head]
                    continue
            entry = nxt[entry]
        else:
            # A return entry whose operation is not linearized yet: no candidate
            # before it works from here, so undo the last linearization.
            if len(stack) > best_depth:
                best_depth = len(stack)
                candidates = []
                e = nxt[head]
                while e != entry:
                    candidates.append(ops[op_of[e]])
                    e = nxt[e]
                best = _KeyOutcome(
                    "violation",
                    0,
                    tuple(ops[j] for j, _ in stack),
                    state,
                    ops[op_of[entry]],
                    tuple(candidates),
                )
            if not stack:
                return evolve(best, steps=steps)
            i, state = stack.pop()
            linearized &= ~(1 << i)
            if ret_entry[i] != -1:
                relink(ret_entry[i])
                remaining += 1
            relink(call_entry[i])
            entry = nxt[call_entry[i]]


_PREFIX_SHOWN = 30


def _violation_detail(key: str, count: int, outcome: _KeyOutcome) -> str:
    prefix = outcome.linearized
    lines = [
        f"key {key!r}: not linearizable ({count} operations, {outcome.steps} steps).",
        f"Longest linearizable prefix ({len(prefix)} operations):",
    ]
    if len(prefix) > _PREFIX_SHOWN:
        lines.append(f"  ... {len(prefix) - _PREFIX_SHOWN} earlier operations")
    start = max(0, len(prefix) - _PREFIX_SHOWN)
    for n, op in enumerate(prefix[start:], start + 1):
        lines.append(f"  {n}. {op.describe()}")
    lines.append(f"State after it: {outcome.state!r}")
    if outcome.stuck is not None:
        lines.append(
            f"Stuck: {outcome.stuck.describe()} must take effect by {outcome.stuck.ret:g},"
            " but none of the calls open then can take effect next:"
        )
    for op in outcome.candidates:
        lines.append(f"  open: {op.describe()}")
    return "\n".join(lines)


def partition(history: History) -> dict[str, list[Operation]]:
    """The history's operations grouped by key, each group in history order."""
    by_key: dict[str, list[Operation]] = {}
    for op in history:
        if op.ret is not None and op.ret < op.call:
            raise ValueError(f"operation returns before it is called: {op!r}")
        by_key.setdefault(op.key, []).append(op)
    return by_key


def check(history: History, model: Model, timeout_steps: int = DEFAULT_TIMEOUT_STEPS) -> Result:
    """Check that ``history`` is linearizable with respect to ``model``, key by key.

    ``timeout_steps`` bounds the search of each key.  The first key (in sorted
    order) found non-linearizable is reported; keys whose search ran out of
    budget are reported with ``partial=True`` when no key is non-linearizable.
    """
    read_only: frozenset[str] = getattr(model, "read_only_kinds", frozenset())
    by_key = partition(history)
    total = 0
    partial: list[str] = []
    for key in sorted(by_key):
        ops = [op for op in by_key[key] if not (op.pending and op.kind in read_only)]
        outcome = _check_key(ops, model, timeout_steps)
        total += outcome.steps
        if outcome.verdict == "violation":
            return Result(
                ok=False,
                key=key,
                detail=_violation_detail(key, len(ops), outcome),
                partial=False,
                steps=total,
                linearized=outcome.linearized,
                stuck=outcome.stuck,
            )
        if outcome.verdict == "partial":
            partial.append(key)
    if partial:
        return Result(
            ok=False,
            key=partial[0],
            detail=(
                f"search budget of {timeout_steps} steps per key exhausted for keys"
                f" {partial!r}; no violation found in the {len(by_key) - len(partial)}"
                " other keys"
            ),
            partial=True,
            steps=total,
        )
    return Result(
        ok=True,
        key=None,
        detail=f"{len(history)} operations over {len(by_key)} keys linearizable ({total} steps)",
        partial=False,
        steps=total,
    )
