"""A tiny Twisted web service that announces itself in SkyDNS while it runs.

    python examples/example_service.py --port 8000 --skydns http://127.0.0.1:8080

It serves "hello" on the port, registers itself as
``<uuid>.127-0-0-1.1-0-0.east.hello.production.skydns.local`` (so
``dig @127.0.0.1 -p 8053 hello.production.skydns.local SRV`` finds it), keeps
its lease alive with `LeaseKeeper`, and unregisters when it is stopped
(Ctrl-C or SIGTERM).  See docs/client.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from typing import Any, Optional, Sequence, cast

from twisted.application.service import MultiService
from twisted.internet import defer, endpoints, task
from twisted.logger import ILogObserver, globalLogBeginner, textFileLogObserver
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from skydns.client import LeaseKeeper, ServiceSpec, SkyDNSClient


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain")
        return b"hello\n"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000, help="port to serve on")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve and announce")
    parser.add_argument("--skydns", default=os.environ.get("SKYDNS_SERVER",
                                                           "http://127.0.0.1:8080"))
    parser.add_argument("--secret", default=os.environ.get("SKYDNS_SECRET"))
    parser.add_argument("--uuid", default=None, help="instance id (default: random)")
    parser.add_argument("--ttl", type=int, default=30, help="lease in seconds")
    return parser.parse_args(list(argv))


async def main(reactor: Any, argv: Sequence[str]) -> None:
    args = parse_args(argv)
    instance = args.uuid or uuid.uuid4().hex[:12]

    services = MultiService()

    # 1. The web service itself.
    endpoint = endpoints.TCP4ServerEndpoint(reactor, args.port, interface=args.host)
    port = await endpoint.listen(Site(Hello()))

    # 2. Its announcement: registered now, renewed every TTL/3 seconds,
    #    registered again if the registry loses it, removed on stop.
    client = SkyDNSClient(args.skydns, secret=args.secret)
    spec = ServiceSpec(
        name="hello", environment="production", region="east", version="1.0.0",
        host=args.host, port=args.port, ttl=args.ttl,
    )
    LeaseKeeper(client, instance, spec, clock=reactor).setServiceParent(services)
    services.startService()

    # 3. Stop cleanly on Ctrl-C / SIGTERM: unregister, then stop listening.
    stopped: defer.Deferred[None] = defer.Deferred()

    async def shutdown() -> None:
        await services.stopService()
        await port.stopListening()
        stopped.callback(None)

    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: defer.Deferred.fromCoroutine(shutdown())
    )
    print(f"serving on http://{args.host}:{args.port}/ as SkyDNS instance {instance}")
    await stopped


def run(argv: Optional[Sequence[str]] = None) -> None:
    globalLogBeginner.beginLoggingTo([cast(ILogObserver, textFileLogObserver(sys.stderr))])
    task.react(lambda reactor: defer.Deferred.fromCoroutine(
        main(reactor, sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    run()
