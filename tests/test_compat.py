"""The HTTP API as the SkyDNS version 1 clients use it (docs/compat.md).

The bodies below are byte for byte what the v1 Go client
(``github.com/skynetservices/skydns1/client``, used by ``skydnsctl``) sends:
it encodes the whole ``msg.Service`` / ``msg.Callback`` struct with
``json.Encoder`` (zero values included, trailing newline), sets no
Content-Type, and puts the raw secret in ``Authorization``.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from tests.test_api import START, APITestCase

#: client.Add(uuid, &msg.Service{Name: ..., TTL: 10}) for a v1 Service struct.
GO_ADD = (
    b'{"UUID":"","Name":"TestService","Version":"1.0.0","Environment":"Production",'
    b'"Region":"Test","Host":"web1.site.com","Port":9000,"TTL":10,'
    b'"Expires":"0001-01-01T00:00:00Z","NoExpire":false}\n'
)

#: client.AddCallback(uuid, &msg.Callback{...}).
GO_CALLBACK = (
    b'{"UUID":"","Name":"TestService","Version":"1.0.0","Environment":"Production",'
    b'"Region":"Test","Host":"web1.site.com","Reply":"web2.example.nl","Port":5441}\n'
)

#: The fields of v1's msg.Service that encoding/json fills from a GET answer,
#: with the JSON types Go accepts for them.
V1_SERVICE_FIELDS: dict[str, Any] = {
    "UUID": str, "Name": str, "Version": str, "Environment": str, "Region": str,
    "Host": str, "Port": int, "TTL": int, "Expires": str, "NoExpire": bool,
}  # fmt: skip


class GoClientTests(APITestCase):
    secret = "mysupersecretsharedsecret"

    def go(self, method: str, path: str, body: Any = None) -> Any:
        """A request as the Go client makes it: raw secret, no Content-Type."""
        return self.call(method, path, body, headers={"Authorization": self.secret})

    def test_add_201_then_conflict_409(self) -> None:
        """Add's body (with "UUID":"" and a zero Expires) registers the service
        under the URL's UUID: 201, then 409 for the same UUID (ErrConflictingUUID)."""
        self.assertEqual(self.go("PUT", "/skydns/services/1001", GO_ADD).code, 201)
        got = self.go("GET", "/skydns/services/1001").json()
        self.assertEqual((got["UUID"], got["Name"], got["Port"]), ("1001", "TestService", 9000))
        self.assertEqual(self.go("PUT", "/skydns/services/1001", GO_ADD).code, 409)

    def test_get_decodes_as_v1_service(self) -> None:
        """GET answers 200 with every msg.Service field under its v1 name and
        a JSON type Go decodes; Expires is RFC 3339; 404 when absent
        (ErrServiceNotFound)."""
        self.go("PUT", "/skydns/services/1001", GO_ADD)
        response = self.go("GET", "/skydns/services/1001")
        self.assertEqual(response.code, 200)
        body = response.json()
        for name, kind in V1_SERVICE_FIELDS.items():
            self.assertIsInstance(body[name], kind, name)
        expires = datetime.datetime.fromisoformat(body["Expires"].replace("Z", "+00:00"))
        self.assertEqual(expires.timestamp(), START + 10)
        self.assertEqual(self.go("GET", "/skydns/services/nope").code, 404)

    def test_update_ttl(self) -> None:
        """Update sends {"TTL":n} with PATCH."""
        self.go("PUT", "/skydns/services/1001", GO_ADD)
        self.assertEqual(self.go("PATCH", "/skydns/services/1001", b'{"TTL":60}').code, 200)
        self.assertEqual(self.go("GET", "/skydns/services/1001").json()["TTL"], 60)

    def test_delete(self) -> None:
        self.go("PUT", "/skydns/services/1001", GO_ADD)
        self.assertEqual(self.go("DELETE", "/skydns/services/1001").code, 200)
        self.assertEqual(self.go("DELETE", "/skydns/services/1001").code, 404)

    def test_get_all_services(self) -> None:
        """GetAllServices GETs /skydns/services/ and decodes a JSON list; an
        empty registry is 200 [] (v1 answered 404, which the client also
        read as an empty list)."""
        self.assertEqual(self.go("GET", "/skydns/services/").json(), [])
        self.go("PUT", "/skydns/services/1001", GO_ADD)
        listed = self.go("GET", "/skydns/services/")
        self.assertEqual(listed.code, 200)
        self.assertEqual([s["UUID"] for s in listed.json()], ["1001"])

    def test_regions_and_environments(self) -> None:
        """GetRegions and GetEnvironments decode {"name": count}."""
        self.assertEqual(self.go("GET", "/skydns/regions/").json(), {})
        self.go("PUT", "/skydns/services/1001", GO_ADD)
        self.assertEqual(self.go("GET", "/skydns/regions/").json(), {"Test": 1})
        self.assertEqual(self.go("GET", "/skydns/environments/").json(), {"Production": 1})

    def test_add_callback(self) -> None:
        """AddCallback: 201 when a service matches, 404 (ErrServiceNotFound) when none."""
        self.assertEqual(self.go("PUT", "/skydns/callbacks/cb1", GO_CALLBACK).code, 404)
        self.go("PUT", "/skydns/services/1001", GO_ADD)
        self.assertEqual(self.go("PUT", "/skydns/callbacks/cb1", GO_CALLBACK).code, 201)

    def test_wrong_secret_401(self) -> None:
        """A missing or wrong raw secret is 401 (SkyDNS 1.0's answer; 0.x said 403)."""
        response = self.call("PUT", "/skydns/services/1001", GO_ADD,
                             headers={"Authorization": "wrong"})  # fmt: skip
        self.assertEqual(response.code, 401)
        self.assertEqual(self.call("GET", "/skydns/services/").code, 401)

    def test_unset_ttl_400(self) -> None:
        """A Go struct with TTL left at zero sends "TTL":0: refused with 400
        naming TTL (v1 stored it already expired, so it was never visible)."""
        body = json.loads(GO_ADD)
        body["TTL"] = 0
        response = self.go("PUT", "/skydns/services/1001", json.dumps(body).encode())
        self.assertEqual(response.code, 400)
        self.assertEqual(response.json()["field"], "TTL")
