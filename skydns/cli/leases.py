"""``skydns lease ...``: grant, renew, keep, revoke and show a lease (SPEC.md §7).

A lease keeps every instance registered with ``--lease ID``: ``skydns lease
keep ID`` renews it until interrupted, one request per interval however
many instances it holds.
"""

from __future__ import annotations

import argparse
from typing import Any

from skydns.cli.arguments import UsageError
from skydns.cli.codes import OK
from skydns.cli.display import format_table
from skydns.client import SkyDNSClient


async def lease_command(runner: Any, client: SkyDNSClient, args: argparse.Namespace) -> int:
    """Run one ``skydns lease ACTION`` (a method of `skydns.cli.runner.Runner`)."""
    action = args.lease_command
    if action == "grant":
        if args.ttl < 1:
            raise UsageError("TTL must be at least 1")
        info = await client.grant_lease(args.ttl)
        result: dict[str, Any] = {"ID": info.id, "TTL": info.ttl}
        text = f"{info.id}\n" if args.quiet else f"granted lease {info.id} ({info.ttl}s)\n"
    elif action == "renew":
        ttl = await client.renew_lease(args.lease_id)
        result = {"ID": args.lease_id, "TTL": ttl}
        text = f"renewed lease {args.lease_id} for {ttl}s\n"
    elif action == "keep":
        ttl = await client.renew_lease(args.lease_id)
        await runner.keep(args, ttl, lambda: client.renew_lease(args.lease_id),
                          "lease " + args.lease_id)  # fmt: skip
        if args.revoke_on_exit:
            await client.revoke_lease(args.lease_id)
            runner.out.write(f"revoked lease {args.lease_id}\n")
        return OK
    elif action == "revoke":
        removed = await client.revoke_lease(args.lease_id)
        result = {"ID": args.lease_id, "Removed": removed}
        text = f"revoked lease {args.lease_id}" + (
            f"; removed {', '.join(removed)}\n" if removed else "\n")
    else:
        shown = await client.lease(args.lease_id, consistent=args.consistent)
        result = {"ID": shown.id, "TTL": shown.ttl, "Remaining": shown.remaining,
                  "Instances": list(shown.instances)}  # fmt: skip
        text = format_table(("ID", "TTL", "REMAINING", "INSTANCES"), [
            (shown.id, shown.ttl, shown.remaining, len(shown.instances))])
        text += "".join(f"  {uuid}\n" for uuid in shown.instances)
    if args.json:
        runner._print_json(result)
    else:
        runner.out.write(text)
    return OK
