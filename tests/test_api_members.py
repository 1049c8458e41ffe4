"""POST /skydns/cluster/members and DELETE /skydns/cluster/members/{id}."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed

from skydns.raft.net.interface import MemberChangeError, NotLeaderHere
from tests.test_api import APITestCase, ControlledCluster


class MemberCluster(ControlledCluster):
    def __init__(self, registry: object) -> None:
        super().__init__(registry)  # type: ignore[arg-type]
        self.changes: list[tuple[str, str, str | None]] = []
        self.answer: Deferred[None] | None = None
        self.members = {"a", "b"}

    def change_member(self, op: str, member_id: str, address: str | None) -> Deferred[None]:
        self.changes.append((op, member_id, address))
        if self.answer is not None:
            return self.answer
        if op == "add" and member_id in self.members:
            return fail(MemberChangeError("exists", f"{member_id} is already a member"))
        if op == "remove" and member_id not in self.members:
            return fail(MemberChangeError("not_found", f"{member_id} is not a member"))
        return succeed(None)


class MembersAPITests(APITestCase):
    def setUp(self) -> None:
        super().setUp()
        self.members = MemberCluster(self.registry)
        self.cluster = self.members
        self.build()

    def test_add(self) -> None:
        response = self.call("POST", "/skydns/cluster/members",
                             {"id": "c", "address": "10.0.0.3:7001"})  # fmt: skip
        self.assertEqual(response.code, 201, response.raw)
        self.assertEqual(response.json(), {"id": "c", "address": "10.0.0.3:7001",
                                           "role": "learner"})  # fmt: skip
        self.assertEqual(self.members.changes, [("add", "c", "10.0.0.3:7001")])

    def test_add_a_read_replica(self) -> None:
        """``"voter": false`` adds a read replica (op ``replica``)."""
        response = self.call("POST", "/skydns/cluster/members",
                             {"id": "r", "address": "10.0.0.9:7001", "voter": False})  # fmt: skip
        self.assertEqual(response.code, 201, response.raw)
        self.assertEqual(response.json()["role"], "replica")
        self.assertEqual(self.members.changes, [("replica", "r", "10.0.0.9:7001")])
        bad = self.call("POST", "/skydns/cluster/members", {"id": "r", "address": "h:1",
                                                            "voter": "no"})  # fmt: skip
        self.assertError(bad, 400, "voter")

    def test_add_existing_is_409(self) -> None:
        response = self.call("POST", "/skydns/cluster/members", {"id": "a", "address": "x:1"})
        self.assertError(response, 409, "already a member")

    def test_add_malformed_is_400(self) -> None:
        self.assertError(self.call("POST", "/skydns/cluster/members", {"id": "c"}), 400, "address")
        self.assertError(self.call("POST", "/skydns/cluster/members", b"{"), 400, "json")
        self.assertError(self.call("POST", "/skydns/cluster/members", [1]), 400, "object")
        self.assertEqual(self.members.changes, [])

    def test_remove(self) -> None:
        response = self.call("DELETE", "/skydns/cluster/members/b")
        self.assertEqual(response.code, 200, response.raw)
        self.assertEqual(response.json(), {"id": "b"})
        self.assertError(self.call("DELETE", "/skydns/cluster/members/zz"), 404, "not a member")

    def test_no_leader_is_503(self) -> None:
        self.members.answer = fail(NotLeaderHere(None))
        self.assertError(self.call("DELETE", "/skydns/cluster/members/b"), 503, "leader")

    def test_refused_is_409(self) -> None:
        self.members.answer = fail(MemberChangeError("refused", "another change is in flight"))
        response = self.call("POST", "/skydns/cluster/members", {"id": "c", "address": "h:1"})
        self.assertError(response, 409, "in flight")
