"""Tests for the linearizability checker (tests/linearizability.py)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from attrs import evolve, frozen
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.linearizability import (
    UNKNOWN,
    FunctionalModel,
    Model,
    Operation,
    Recorder,
    RegisterModel,
    RegistryModel,
    UnknownKindError,
    check,
)

REGISTER = RegisterModel()
REGISTRY = RegistryModel()
DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=200)


def w(value: Any, call: float, ret: float | None, key: str = "x", client: str = "w") -> Operation:
    return Operation(client, key, "write", value, None, call, ret)


def r(value: Any, call: float, ret: float | None, key: str = "x", client: str = "r") -> Operation:
    return Operation(client, key, "read", None, value, call, ret)


def cas(
    old: Any, new: Any, result: Any, call: float, ret: float | None, client: str = "c"
) -> Operation:
    return Operation(client, "x", "cas", (old, new), result, call, ret)


def reg(kind: str, output: Any, call: float, ret: float | None, value: Any = None) -> Operation:
    return Operation("c", "uuid-1", kind, value, output, call, ret)


def _orderable(
    ops: Sequence[Operation], model: Model, state: Any, remaining: frozenset[int]
) -> bool:
    if all(ops[i].pending for i in remaining):
        return True
    for i in remaining:
        blocked = any(not ops[j].pending and (ops[j].ret or 0) < ops[i].call for j in remaining)
        if blocked:
            continue
        ok, new_state = model.step(state, ops[i])
        if ok and _orderable(ops, model, new_state, remaining - {i}):
            return True
    return False


def brute_force(history: Sequence[Operation], model: Model) -> bool:
    """An independent oracle: try every order that respects real time, key by key."""
    for key in {op.key for op in history}:
        ops = [evolve(op, output=UNKNOWN) if op.pending else op for op in history if op.key == key]
        if not _orderable(ops, model, model.init(), frozenset(range(len(ops)))):
            return False
    return True


class LinearizableHistoryTests(SynchronousTestCase):
    """Histories that have a linearization are accepted."""

    def assertLinearizable(self, history: Sequence[Operation], model: Model = REGISTER) -> None:
        result = check(history, model)
        self.assertTrue(result.ok, result.detail)
        self.assertFalse(result.partial)
        self.assertIsNone(result.key)

    def test_empty(self) -> None:
        """An empty history is linearizable."""
        self.assertLinearizable([])

    def test_sequential(self) -> None:
        """A sequential history that follows the model is linearizable."""
        self.assertLinearizable(
            [
                r(None, 0, 1),
                w(1, 2, 3),
                r(1, 4, 5),
                cas(1, 2, True, 6, 7),
                cas(1, 3, False, 8, 9),
                r(2, 10, 11),
            ]
        )

    def test_concurrent_read_sees_either_value(self) -> None:
        """A read overlapping a write may return the old or the new value."""
        for seen in (None, 1):
            with self.subTest(seen=seen):
                self.assertLinearizable([w(1, 0, 10), r(seen, 2, 3)])

    def test_overlapping_writes_either_order(self) -> None:
        """Two overlapping writes may take effect in either order."""
        for last in (1, 2):
            with self.subTest(last=last):
                self.assertLinearizable([w(1, 0, 5), w(2, 1, 6), r(last, 7, 8), r(last, 9, 10)])

    def test_touching_intervals_are_concurrent(self) -> None:
        """A call at the instant another returns is concurrent with it (closed intervals)."""
        self.assertLinearizable([w(1, 0, 1), r(None, 1, 2)])

    def test_cas_race(self) -> None:
        """Of two racing CAS from the same value one wins, and reads see the winner."""
        for winner in (1, 2):
            with self.subTest(winner=winner):
                self.assertLinearizable(
                    [
                        w(0, 0, 1),
                        cas(0, 1, winner == 1, 2, 5, client="a"),
                        cas(0, 2, winner == 2, 3, 6, client="b"),
                        r(winner, 7, 8),
                    ]
                )

    def test_unreturned_write_took_effect(self) -> None:
        """A write that never returned may take effect after its call."""
        self.assertLinearizable([w(1, 0, 1), w(2, 2, None), r(2, 3, 4)])

    def test_unreturned_write_did_not_take_effect(self) -> None:
        """A write that never returned may never take effect."""
        self.assertLinearizable([w(1, 0, 1), w(2, 2, None), r(1, 3, 4), r(1, 10, 11)])

    def test_unreturned_output_is_unconstrained(self) -> None:
        """The recorded output of a call that never returned is ignored."""
        self.assertLinearizable([w(0, 0, 1), cas(0, 1, False, 2, None), r(1, 3, 4), r(7, 5, None)])

    def test_unknown_output_may_take_effect_after_ret(self) -> None:
        """An UNKNOWN output (a timeout) may take effect after its recorded return."""
        self.assertLinearizable([w(1, 0, 1), cas(1, 2, UNKNOWN, 2, 3), r(1, 4, 5), r(2, 6, 7)])

    def test_registry_sequence(self) -> None:
        """The registry model: register, conflict, get, unregister, not_found."""
        self.assertLinearizable(
            [
                reg("get", None, 0, 1),
                reg("register", "ok", 2, 3, value="svc-a"),
                reg("register", "conflict", 4, 5, value="svc-b"),
                reg("get", "svc-a", 6, 7),
                reg("unregister", "ok", 8, 9),
                reg("unregister", "not_found", 10, 11),
                reg("get", None, 12, 13),
            ],
            REGISTRY,
        )

    def test_registry_concurrent_registers(self) -> None:
        """Of two concurrent registrations of one UUID, either may win."""
        self.assertLinearizable(
            [
                reg("register", "conflict", 0, 5, value="svc-a"),
                reg("register", "ok", 1, 6, value="svc-b"),
                reg("get", "svc-b", 7, 8),
            ],
            REGISTRY,
        )


class NonLinearizableHistoryTests(SynchronousTestCase):
    """Histories without a linearization are rejected, with the evidence."""

    def assertViolation(self, history: Sequence[Operation], model: Model = REGISTER) -> Any:
        result = check(history, model)
        self.assertFalse(result.ok, result.detail)
        self.assertFalse(result.partial)
        self.assertTrue(result.violation)
        return result

    def test_stale_read(self) -> None:
        """A read that starts after a write completed cannot see the older value."""
        self.assertViolation([w(1, 0, 1), r(None, 2, 3)])

    def test_never_written(self) -> None:
        """A read cannot return a value nobody wrote."""
        self.assertViolation([w(1, 0, 10), r(7, 1, 2)])

    def test_reads_go_back_in_time(self) -> None:
        """Sequential reads cannot see a newer value and then an older one."""
        self.assertViolation([w(1, 0, 1), w(2, 2, 10), r(2, 3, 4), r(1, 5, 6)])

    def test_values_flip_flop(self) -> None:
        """Overlapping writes take effect in one order for every later reader."""
        self.assertViolation([w(1, 0, 5), w(2, 1, 6), r(1, 7, 8), r(2, 9, 10), r(1, 11, 12)])

    def test_lost_cas(self) -> None:
        """A successful CAS cannot be lost by a later read."""
        self.assertViolation([w(0, 0, 1), cas(0, 1, True, 2, 3), r(0, 4, 5)])

    def test_both_cas_win(self) -> None:
        """Two racing CAS from the same value cannot both succeed."""
        self.assertViolation(
            [w(0, 0, 1), cas(0, 1, True, 2, 5, client="a"), cas(0, 2, True, 2, 5, client="b")]
        )

    def test_cas_fails_on_match(self) -> None:
        """A CAS cannot fail when nothing else could have changed the value."""
        self.assertViolation([w(0, 0, 1), cas(0, 1, False, 2, 3)])

    def test_read_from_the_future(self) -> None:
        """A read cannot see a write that started after the read returned."""
        self.assertViolation([r(1, 0, 1), w(1, 2, 3)])

    def test_unreturned_write_not_before_its_call(self) -> None:
        """A write that never returned cannot take effect before it was called."""
        self.assertViolation([w(1, 0, 1), r(2, 2, 3), w(2, 4, None)])

    def test_registry_double_registration(self) -> None:
        """Two registrations of one UUID cannot both succeed with nothing removed."""
        self.assertViolation(
            [
                reg("register", "ok", 0, 5, value="svc-a"),
                reg("register", "ok", 1, 6, value="svc-b"),
            ],
            REGISTRY,
        )

    def test_registry_lost_registration(self) -> None:
        """An acknowledged registration is visible to a later get."""
        self.assertViolation(
            [reg("register", "ok", 0, 1, value="svc-a"), reg("get", None, 2, 3)], REGISTRY
        )

    def test_report_names_key_prefix_and_stuck_operation(self) -> None:
        """The report names the failing key, the longest prefix and the stuck operation."""
        good = [w(1, 0, 1, key="a"), r(1, 2, 3, key="a")]
        write, stale = w(5, 0, 1, key="b", client="writer"), r(None, 2, 3, key="b")
        result = self.assertViolation(good + [write, stale])
        self.assertEqual(result.key, "b")
        self.assertEqual(result.linearized, (write,))
        self.assertEqual(result.stuck, stale)
        self.assertIn("key 'b'", result.detail)
        self.assertIn("writer write(5)", result.detail)
        self.assertIn("State after it: 5", result.detail)


class BudgetAndValidationTests(SynchronousTestCase):
    """The search is bounded, and bad input is refused."""

    def hard(self, key: str) -> list[Operation]:
        """Many concurrent writes and an impossible read: exponential to refute."""
        writes = [w(i, 0, 100, key=key, client=f"c{i}") for i in range(16)]
        return writes + [r(99, 0, 100, key=key)]

    def test_budget_exhausted_is_partial(self) -> None:
        """A search that runs out of steps reports partial, not a verdict."""
        result = check(self.hard("x"), REGISTER, timeout_steps=1000)
        self.assertTrue(result.partial)
        self.assertFalse(result.ok)
        self.assertFalse(result.violation)
        self.assertEqual(result.key, "x")
        self.assertEqual(result.steps, 1000)

    def test_violation_outranks_partial(self) -> None:
        """A violation on one key is reported even when another key ran out of budget."""
        history = self.hard("a") + [w(1, 0, 1, key="b"), r(None, 2, 3, key="b")]
        result = check(history, REGISTER, timeout_steps=1000)
        self.assertTrue(result.violation)
        self.assertEqual(result.key, "b")

    def test_return_before_call(self) -> None:
        """An operation that returns before it is called is an error in the recording."""
        self.assertRaises(ValueError, check, [w(1, 5, 4)], REGISTER)

    def test_unknown_kind(self) -> None:
        """A model refuses a kind it does not define."""
        self.assertRaises(
            UnknownKindError, check, [Operation("c", "x", "frob", None, None, 0, 1)], REGISTER
        )


@frozen
class CounterModel(FunctionalModel):
    """A model written the documented way, to pin that extending is easy."""

    def init(self) -> Any:
        return 0

    def op_incr(self, state: Any, amount: Any) -> tuple[Any, Any]:
        return state + amount, state + amount


class ExtensionTests(SynchronousTestCase):
    def test_functional_model_subclass(self) -> None:
        """A FunctionalModel subclass with an op_<kind> method is checked by kind."""

        def incr(amount: int, output: Any, call: float, ret: float) -> Operation:
            return Operation("c", "n", "incr", amount, output, call, ret)

        self.assertTrue(check([incr(1, 1, 0, 5), incr(2, 3, 1, 6)], CounterModel()).ok)
        self.assertTrue(check([incr(1, 3, 0, 5), incr(2, 2, 1, 6)], CounterModel()).ok)
        self.assertTrue(check([incr(1, 1, 0, 1), incr(2, 2, 2, 3)], CounterModel()).violation)


class RecorderTests(SynchronousTestCase):
    def test_records_in_event_order(self) -> None:
        """The recorder orders events strictly and leaves unanswered calls pending."""
        recorder = Recorder()
        write = recorder.invoke("c1", "x", "write", 1)
        read = recorder.invoke("c2", "x", "read")
        recorder.complete(write, None)
        lost = recorder.invoke("c3", "x", "write", 2)
        recorder.complete(read, None)
        stale = recorder.invoke("c2", "x", "read")
        recorder.complete(stale, None)
        history = recorder.history()
        self.assertEqual(
            [(op.client, op.call, op.ret) for op in history],
            [("c1", 1, 3), ("c2", 2, 5), ("c3", 4, None), ("c2", 6, 7)],
        )
        self.assertTrue(history[lost].pending)
        self.assertTrue(check(history[:3], REGISTER).ok)
        self.assertTrue(check(history, REGISTER).violation)


VALUES = st.integers(0, 2)
# (model, input strategy per kind, read kind)
SPECS: dict[str, tuple[FunctionalModel, dict[str, st.SearchStrategy[Any]], str]] = {
    "register": (
        REGISTER,
        {"read": st.none(), "write": VALUES, "cas": st.tuples(VALUES, VALUES)},
        "read",
    ),
    "registry": (
        REGISTRY,
        {"register": st.sampled_from(["s1", "s2"]), "unregister": st.none(), "get": st.none()},
        "get",
    ),
}


@st.composite
def widened(
    draw: st.DrawFn, spec: str, max_ops: int = 40, keys: Sequence[str] = ("a", "b", "c")
) -> list[Operation]:
    """A sequential execution of the model, made concurrent around its linearization points.

    Operation i takes effect at time 10 * i; its interval is widened by up to
    25 on each side.  Some calls never return: those may or may not have taken
    effect, and their recorded output is garbage.
    """
    model, inputs, _ = SPECS[spec]
    state = {key: model.init() for key in keys}
    history = []
    for i in range(draw(st.integers(1, max_ops))):
        key = draw(st.sampled_from(keys))
        kind = draw(st.sampled_from(sorted(inputs)))
        op = Operation(f"c{i % 7}", key, kind, draw(inputs[kind]), None, 0, None)
        point = 10 * i
        call = point - draw(st.integers(0, 25))
        fate = draw(st.integers(0, 9))  # 0: lost before effect, 1: effect but no answer
        if fate != 0:
            output, state[key] = model.apply(state[key], op)
        if fate in (0, 1):
            history.append(evolve(op, output="garbage", call=call))
        else:
            ret = point + draw(st.integers(0, 25))
            history.append(evolve(op, output=output, call=call, ret=ret))
    return history


def mutate_read(history: list[Operation], read_kind: str, data: st.DataObject, value: Any) -> int:
    """Replace one completed read's output with ``value``; return its index."""
    reads = [i for i, op in enumerate(history) if op.kind == read_kind and not op.pending]
    assume(reads)
    index = data.draw(st.sampled_from(reads))
    history[index] = evolve(history[index], output=value)
    return index


class PropertyTests(SynchronousTestCase):
    """Generated histories, checked against their construction and a brute-force oracle."""

    @DETERMINISTIC
    @given(st.data(), st.sampled_from(sorted(SPECS)))
    def test_widened_sequential_is_linearizable(self, data: st.DataObject, spec: str) -> None:
        """Widening intervals around real linearization points keeps a history linearizable."""
        history = data.draw(widened(spec))
        result = check(history, SPECS[spec][0])
        self.assertTrue(result.ok, result.detail)

    @DETERMINISTIC
    @given(st.data(), st.sampled_from(sorted(SPECS)))
    def test_read_of_never_current_value(self, data: st.DataObject, spec: str) -> None:
        """A read returning a value no operation ever produced makes the history fail."""
        history = data.draw(widened(spec))
        index = mutate_read(history, SPECS[spec][2], data, "never")
        result = check(history, SPECS[spec][0])
        self.assertTrue(result.violation, result.detail)
        self.assertEqual(result.key, history[index].key)

    @DETERMINISTIC
    @given(st.data(), st.sampled_from(sorted(SPECS)))
    def test_mutated_read_agrees_with_oracle(self, data: st.DataObject, spec: str) -> None:
        """Changing a read to another plausible value fails exactly when no order explains it."""
        history = data.draw(widened(spec, max_ops=7, keys=("a",)))
        value = data.draw(st.sampled_from([None, 0, 1, 2, "s1", "s2"]))
        mutate_read(history, SPECS[spec][2], data, value)
        model = SPECS[spec][0]
        self.assertEqual(check(history, model).ok, brute_force(history, model))

    @DETERMINISTIC
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["a", "b"]),
                st.sampled_from(["read", "write", "cas"]),
                st.tuples(VALUES, VALUES),
                st.sampled_from([None, 0, 1, 2, True, False]),
                st.integers(0, 10),
                st.one_of(st.none(), st.integers(0, 5)),
            ),
            max_size=7,
        )
    )
    def test_arbitrary_histories_agree_with_oracle(self, rows: list[Any]) -> None:
        """On small arbitrary histories the checker agrees with exhaustive search."""
        history = []
        for n, (key, kind, (a, b), output, call, length) in enumerate(rows):
            value = {"read": None, "write": a, "cas": (a, b)}[kind]
            ret = None if length is None else call + length
            history.append(Operation(f"c{n}", key, kind, value, output, call, ret))
        self.assertEqual(check(history, REGISTER).ok, brute_force(history, REGISTER))


def generated(seed: int, count: int, keys: int, spread: int) -> list[Operation]:
    """A linearizable register history: sequential points, widened by up to ``spread``."""
    rng = random.Random(seed)
    state: dict[str, Any] = {}
    history = []
    for i in range(count):
        key = f"k{rng.randrange(keys)}"
        kind = rng.choice(["read", "read", "write", "cas"])
        value = {"read": None, "write": rng.randrange(5), "cas": (rng.randrange(5), i)}[kind]
        op = Operation(f"c{i % 10}", key, kind, value, None, i - rng.uniform(0, spread), None)
        output, state[key] = REGISTER.apply(state.get(key), op)
        if rng.random() < 0.01:
            history.append(op)
        else:
            history.append(evolve(op, output=output, ret=i + rng.uniform(0, spread)))
    return history


class PerformanceTests(SynchronousTestCase):
    def test_large_history_within_budget(self) -> None:
        """2000 operations over 20 keys, ~4 concurrent per key, are decided within budget."""
        history = generated(seed=20261125, count=2000, keys=20, spread=40)
        result = check(history, REGISTER)
        self.assertFalse(result.partial, result.detail)
        self.assertTrue(result.ok, result.detail)

    def test_large_violation_within_budget(self) -> None:
        """A stale read planted in a large history is found within budget."""
        history = generated(seed=20261125, count=2000, keys=20, spread=40)
        index = next(
            i for i, op in enumerate(history) if op.kind == "read" and i > 1000 and not op.pending
        )
        history[index] = evolve(history[index], output="never")
        result = check(history, REGISTER)
        self.assertFalse(result.partial, result.detail)
        self.assertTrue(result.violation)
        self.assertEqual(result.key, history[index].key)
