"""Plant known Raft bugs one at a time and check that the simulation catches each.

    python bench/raft_mutants.py                  # every bug, 60 s each at most
    python bench/raft_mutants.py --only ack_before_fsync --verbose
    python bench/raft_mutants.py --list

Each mutant is a small edit of the source (the text it replaces must occur
exactly once) applied to a temporary copy of ``skydns/`` and ``tests/``.  The
copy then runs the simulation scenarios of ``tests/raft/scenarios.py`` (real
nodes, simulated disk and network), the ones named for the bug first, on
its first 40 seeds, then every scenario on seeds 0, 1, 2, ... in turn, until
one fails (a safety violation, a non-linearizable
client history, an exception a node logged, or a scenario's own check) or
the time budget runs out.  The unmutated tree is run first over every
scenario for as long, to show that a failure is the bug's doing.
Prints one line per bug, then ``caught N of M``; exits 1 unless every bug
was caught.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from attrs import frozen

ROOT = Path(__file__).resolve().parent.parent


@frozen
class Mutant:
    name: str
    bug: str
    #: (file, text, replacement): every edit must match exactly once.
    edits: tuple[tuple[str, str, str], ...]
    #: Scenarios to try first.
    hints: tuple[str, ...]


CORE = "skydns/raft/core/"
NODE = "skydns/raft/node/"
STORAGE = "skydns/raft/storage/"

MUTANTS = [
    Mutant("figure8_commit", "commit an old-term entry by counting its replicas (Figure 8)", (
        (CORE + "replication.py",
         "if index > core.log.committed and core.log.term(index) == core.term:",
         "if index > core.log.committed:"),
    ), ("figure8_steered", "figure8")),
    Mutant("vote_not_persisted", "the vote is never written to disk", (
        (CORE + "raft.py", "return HardState(self.term, self.vote, self.log.committed)",
         "return HardState(self.term, None, self.log.committed)"),
    ), ("leader_crashes", "restarts")),
    Mutant("vote_not_restored", "the vote is not read back at start-up", (
        (CORE + "raft.py", "self.vote = hs.vote", "self.vote = None"),
    ), ("revote_steered", "elections")),
    Mutant("no_truncation_on_conflict", "a follower keeps entries that conflict with the leader's", (
        (CORE + "log.py", "            if not self.match_term(entry.index, entry.term):\n"
                          "                return entry.index",
         "            if self.term(entry.index) is None:\n"
         "                return entry.index"),
    ), ("figure8", "lagging_followers")),
    Mutant("truncation_on_match", "a follower truncates at the first entry sent, matching or not", (
        (CORE + "log.py", "        conflict = self.find_conflict(entries)\n"
                          "        if conflict:\n"
                          "            if conflict <= self.committed:",
         "        conflict = entries[0].index if entries else 0\n"
         "        if conflict:\n"
         "            if conflict <= self.committed and False:"),
    ), ("unreliable_network", "figure8")),
    Mutant("vote_without_up_to_date_check", "votes go to candidates whose log is behind", (
        (CORE + "election.py",
         "if can_vote and core.log.is_up_to_date(m.last_log_index, m.last_log_term):",
         "if can_vote:"),
    ), ("figure8", "leader_crashes")),
    Mutant("apply_before_commit", "entries are applied as soon as they are in the log", (
        (CORE + "log.py", "return self.entries[start : self.committed - self.snapshot.index]",
         "return self.entries[start:]"),
        (CORE + "log.py", "        low = max(self.applied + 1, self.first_index())\n"
                          "        if low > self.committed:",
         "        low = max(self.applied + 1, self.first_index())\n"
         "        if low > self.last_index():"),
    ), ("leader_crashes",)),
    Mutant("read_index_without_quorum", "a leader serves reads without a heartbeat round", (
        (CORE + "reads.py",
         "    elif core.read_only.add(core.log.committed, context, origin, core.id):\n"
         "        core.broadcast_heartbeat(context)",
         "    else:\n"
         "        deliver(core, core.log.committed, context, origin)"),
    ), ("partitioned_leader",)),
    Mutant("read_index_before_term_commit", "a new leader serves reads before its term commits", (
        (CORE + "reads.py", "    if core.log.term(core.log.committed) != core.term or core.id not in",
         "    if core.id not in"),
    ), ("failover_read_steered", "failover_reads")),
    Mutant("commit_index_backwards", "the commit index may move backwards", (
        (CORE + "raft.py", "self.log.commit_to(min(m.commit, self.log.last_index()))",
         "self.log.committed = min(m.commit, self.log.last_index())"),
    ), ("leader_crashes", "lagging_followers")),
    Mutant("stale_term_votes_counted", "vote answers of an earlier term count in this one", (
        (CORE + "raft.py", "            elif isinstance(m, RequestVote) and m.prevote:\n"
                           "                self.send(RequestVoteResponse(self.id, m.src, self.term, "
                           "False, prevote=True))\n"
                           "            return",
         "            elif isinstance(m, RequestVote) and m.prevote:\n"
         "                self.send(RequestVoteResponse(self.id, m.src, self.term, False, "
         "prevote=True))\n"
         "            if not isinstance(m, RequestVoteResponse):\n"
         "                return"),
    ), ("elections", "five_nodes")),
    Mutant("learners_vote", "learners are asked for votes, and their votes count", (
        (CORE + "election.py", "    if core.recovering or core.id not in core.config.voters:",
         "    if core.recovering:"),
        (CORE + "election.py", "    for voter in sorted(core.config.voters):",
         "    for voter in sorted(core.config.voters | core.config.learners):"),
        (CORE + "election.py", "    if m.prevote != prevoting or m.src not in core.config.voters:",
         "    if m.prevote != prevoting:"),
        (CORE + "election.py",
         "    granted = sum(1 for v, g in core.votes.items() if g and v in core.config.voters)",
         "    granted = sum(1 for v, g in core.votes.items() if g)"),
    ), ("learners", "membership")),
    Mutant("learners_in_commit_quorum", "learners' copies count towards commitment", (
        (CORE + "replication.py",
         "        (0 if core.progress[v].recovering else core.progress[v].match for v in "
         "core.config.voters),",
         "        (0 if core.progress[v].recovering else core.progress[v].match for v in "
         "core.config.voters | core.config.learners),"),
    ), ("learners", "membership")),
    Mutant("prevote_off", "no PreVote round", (
        (CORE + "raft.py", "        self.pre_vote = pre_vote\n", "        self.pre_vote = False\n"),
    ), ("slow_follower",)),
    Mutant("check_quorum_off", "no CheckQuorum (nor leader stickiness)", (
        (CORE + "raft.py", "        self.check_quorum = check_quorum\n",
         "        self.check_quorum = False\n"),
    ), ("lost_quorum",)),
    Mutant("ack_before_fsync", "a follower acknowledges entries before they are durable", (
        (NODE + "driver.py",
         "        if self.core.role is not Role.LEADER or (hs.term, hs.vote) != (saved.term, "
         "saved.vote):\n            return False",
         "        if False:\n            return False"),
        (NODE + "driver.py", "_EARLY = (AppendEntries, Heartbeat)",
         "from skydns.raft.core.messages import AppendEntriesResponse as _Ack\n"
         "_EARLY = (AppendEntries, Heartbeat, _Ack)"),
    ), ("restarts", "leader_crashes")),
    Mutant("vote_sent_before_save", "a vote is granted before it is durable", (
        (NODE + "driver.py",
         "        if self.core.role is not Role.LEADER or (hs.term, hs.vote) != (saved.term, "
         "saved.vote):\n            return False",
         "        if False:\n            return False"),
        (NODE + "driver.py", "_EARLY = (AppendEntries, Heartbeat)",
         "from skydns.raft.core.messages import RequestVoteResponse as _Vote\n"
         "_EARLY = (AppendEntries, Heartbeat, _Vote)"),
    ), ("elections", "restarts")),
    Mutant("vote_changes_within_a_term", "a vote changes without a term change", (
        (CORE + "election.py", "        or (core.vote is None and core.leader is None)",
         "        or core.leader is None"),
    ), ("elections", "five_nodes")),
    Mutant("two_changes_in_flight", "a second membership change starts before the first commits", (
        (CORE + "membership.py", "    if core.config_index > core.log.committed:\n"
                                 "        raise ConfigChangeRefused(",
         "    if False:\n        raise ConfigChangeRefused("),
    ), ("membership",)),
    Mutant("two_voters_at_once", "two voters added or removed in one change", (
        (CORE + "membership.py", "    if len(new.voters ^ old.voters) > 1:",
         "    if len(new.voters ^ old.voters) > 2:"),
    ), ("membership",)),
    Mutant("change_before_first_commit", "a new leader changes membership before its term commits", (
        (CORE + "membership.py", "    if core.log.term(core.log.committed) != core.term:\n"
                                 "        raise ConfigChangeRefused(",
         "    if False:\n        raise ConfigChangeRefused("),
    ), ("membership_erratum", "membership")),
    Mutant("snapshot_keeps_divergent_suffix", "installing a snapshot keeps the log after it", (
        (CORE + "log.py", "        self.snapshot = meta\n        self.entries = []\n"
                          "        self.committed = meta.index",
         "        self.entries = [e for e in self.entries if e.index > meta.index]\n"
         "        self.snapshot = meta\n        self.committed = meta.index"),
        (CORE + "log.py", "        self.unstable = meta.index + 1\n",
         "        self.unstable = meta.index + 1 + len(self.entries)\n"),
    ), ("snapshot_over_divergence", "snapshots")),
    Mutant("stale_append_accepted", "AppendEntries of an older term are accepted", (
        (CORE + "raft.py", "                self.send(RequestVoteResponse(self.id, m.src, self.term, "
                           "False, prevote=True))\n            return",
         "                self.send(RequestVoteResponse(self.id, m.src, self.term, False, "
         "prevote=True))\n            if not isinstance(m, AppendEntries):\n                return"),
    ), ("partitioned_leader", "figure8")),
    Mutant("no_session_dedupe", "a retried proposal is applied twice", (
        (NODE + "applier.py",
         "        result = self.sessions.apply(envelope.client_id, envelope.seq, run)",
         "        result = run()"),
    ), ("unreliable_network", "nemesis")),
    Mutant("inputs_during_save", "the core is stepped while its Ready is being saved", (
        (NODE + "gate.py", "        if self.saving:\n            self._held.append(call)",
         "        if False:\n            self._held.append(call)"),
    ), ("save_conflict_steered", "slow_disks")),
    Mutant("wal_loss_trimmed", "synced frames lost from the WAL are trimmed silently", (
        (STORAGE + "wal.py", "            if beyond > 0:", "            if beyond > 0 and False:"),
    ), ("lost_vote_steered", "lost_synced_data")),
    Mutant("heartbeat_commit_uncapped", "heartbeats carry the commit index uncapped", (
        (CORE + "replication.py",
         "        commit = min(core.progress[peer].match, core.log.committed)",
         "        commit = core.log.committed"),
    ), ("lagging_followers", "figure8")),
    Mutant("snapshot_without_sessions", "a snapshot restores state but not the session table", (
        (NODE + "snapshotter.py", "        self.applier.sessions = sessions\n",
         "        self.applier.sessions = type(sessions)()\n"),
    ), ("snapshots",)),
    Mutant("joiner_votes", "a node joining with an empty log votes at once", (
        (NODE + "lifecycle.py",
         "    if options.joining and loaded.recovering is None and _empty(loaded):",
         "    if False:"),
        (CORE + "election.py", "    if core.recovering or core.id not in core.config.voters:",
         "    if core.recovering:"),
    ), ("membership",)),
    Mutant("replicas_promoted", "the leader promotes read replicas like other learners", (
        (NODE + "members.py", "        for learner in sorted(core.config.learners - replicas):",
         "        for learner in sorted(core.config.learners):"),
    ), ("replicas",)),
    Mutant("replicas_lost_at_compaction", "a node's own compaction forgets the read replicas", (
        (NODE + "snapshotter.py",
         "            self.members.snapshot_replicas = self.members.replicas_at(core, keep_from)\n",
         ""),
    ), ("replicas",)),
    Mutant("lease_margin_without_interval",
           "the leader keeps a lease's recorded end only the margin ahead, not the client's "
           "renewal interval too: a new leader finds leases kept alive run out", (
        ("skydns/leases/lessor.py",
         "recorded - now < min(held.ttl, held.interval + self.margin)",
         "recorded - now < min(held.ttl, self.margin)"),
    ), ("leases_leader_changes", "leases_partitions")),
    Mutant("lease_renewal_forgotten", "a renewal is answered but its deadline not held", (
        ("skydns/leases/lessor.py",
         "            self._hold((LEASE, lease.id), mono, lease.ttl)\n",
         ""),
    ), ("leases_leader_changes",)),
    Mutant("lease_stretched", "a renewal holds the lease for twice its TTL", (
        ("skydns/leases/lessor.py",
         "held.deadline, held.ttl = max(held.deadline, mono + ttl), ttl",
         "held.deadline, held.ttl = max(held.deadline, mono + 2 * ttl), ttl"),
    ), ("leases_leader_changes",)),
]

WORKER = r"""
import json, sys, time, io, contextlib
sys.path.insert(0, sys.argv[1])
from tests.raft.scenarios import SCENARIOS
hints, first = json.loads(open(sys.argv[2]).read())
deadline = time.monotonic() + float(sys.argv[3])
# The hinted scenarios' first seeds, then every scenario in turn.
schedule = [(name, seed) for seed in range(first) for name in hints]
schedule += [(name, seed) for seed in range(1000) for name in SCENARIOS]
runs = 0
for name, seed in schedule:
    if time.monotonic() > deadline:
        break
    runs += 1
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            SCENARIOS[name](seed)
    except BaseException as e:
        print(json.dumps({"caught": True, "scenario": name, "seed": seed, "runs": runs,
                          "error": (type(e).__name__ + ": " + " ".join(str(e).split()))[:300]}))
        sys.exit(0)
print(json.dumps({"caught": False, "runs": runs}))
"""


def copy_tree(into: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "skydns", into / "skydns", ignore=ignore)
    shutil.copytree(ROOT / "tests", into / "tests", ignore=ignore)


def apply(mutant: Mutant, into: Path) -> None:
    for file, text, replacement in mutant.edits:
        path = into / file
        source = path.read_text()
        if source.count(text) != 1:
            raise SystemExit(f"{mutant.name}: the text to replace occurs {source.count(text)} "
                             f"times in {file}: the source changed, update the mutant")
        path.write_text(source.replace(text, replacement))


def run(tree: Path, hints: tuple[str, ...], first: int, budget: float) -> dict[str, object]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    plan = tree / "schedule.json"
    plan.write_text(json.dumps([hints, first]))
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(tree), str(plan), str(budget)],
        capture_output=True, text=True, cwd=tree, env=env, timeout=budget + 120,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"caught": False, "runs": 0, "error": done.stderr[-500:]}
    result: dict[str, object] = json.loads(lines[-1])
    return result


def try_mutant(mutant: Mutant, budget: float) -> tuple[Mutant, dict[str, object], float]:
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        apply(mutant, tree)
        began = time.monotonic()
        result = run(tree, mutant.hints, 40, budget)
        return mutant, result, time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per bug")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", action="append", help="run this bug only (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the bugs and exit")
    parser.add_argument("--baseline", type=float, default=60.0,
                        help="seconds of the unmutated tree over the schedule first (0: skip)")
    args = parser.parse_args()
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.list:
        for m in MUTANTS:
            print(f"{m.name:34} {m.bug}")
        return 0
    if args.baseline:
        with tempfile.TemporaryDirectory(prefix="mutant-none-") as tmp:
            copy_tree(Path(tmp))
            began = time.monotonic()
            base = run(Path(tmp), (), 0, args.baseline)
            took = time.monotonic() - began
        if base.get("caught"):
            print(f"the unmutated tree fails: {base}")
            return 1
        print(f"{'(unmutated tree)':34} passes {base['runs']} scenario runs in {took:.0f} s")
    caught = 0
    began = time.monotonic()
    with ThreadPoolExecutor(args.jobs) as pool:
        for mutant, result, took in pool.map(lambda m: try_mutant(m, args.budget), mutants):
            if result.get("caught"):
                caught += 1
                print(f"{mutant.name:34} caught in {took:5.1f} s by {result['scenario']} "
                      f"seed {result['seed']} ({result['runs']} runs): "
                      f"{str(result['error'])[:110]}", flush=True)  # fmt: skip
            else:
                print(f"{mutant.name:34} NOT CAUGHT in {took:.0f} s ({result['runs']} runs) "
                      f"{result.get('error', '')}", flush=True)  # fmt: skip
    print(f"caught {caught} of {len(mutants)} in {time.monotonic() - began:.0f} s")
    return 0 if caught == len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
