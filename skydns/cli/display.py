"""How the ``skydns`` command prints what a server answered: tables of
services, one service, counts and DNS answers."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from skydns.client import (
    ServiceInfo,
    WatchEvent,
)
from skydns.client.lookup import DNSAnswer


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell, two spaces apart; no trailing blanks."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines) + "\n"


SERVICE_COLUMNS = ("UUID", "NAME", "VERSION", "ENVIRONMENT", "REGION", "HOST", "PORT", "TTL")


def format_services(services: Sequence[ServiceInfo]) -> str:
    """A table; TTL ``never`` for a NoExpire instance; a DNS column
    (``drained``) only when some instance is drained."""
    ordered = sorted(services, key=lambda s: (s.name, s.environment, s.region, s.uuid))
    rows = [(s.uuid, s.name, s.version, s.environment, s.region, s.host, s.port,
             "never" if s.no_expire else s.ttl) for s in ordered]  # fmt: skip
    if not any(s.drain for s in ordered):
        return format_table(SERVICE_COLUMNS, rows)
    return format_table(SERVICE_COLUMNS + ("DNS",), [
        (*row, "drained" if s.drain else "") for row, s in zip(rows, ordered, strict=True)
    ])


def format_service(s: ServiceInfo) -> str:
    fields = [("UUID", s.uuid), ("Name", s.name), ("Version", s.version),
              ("Environment", s.environment), ("Region", s.region), ("Host", s.host),
              ("Port", s.port), ("TTL", s.ttl), ("Priority", s.priority),
              ("Weight", s.weight), ("NoExpire", str(s.no_expire).lower()),
              ("Protocol", s.protocol), ("Drain", str(s.drain).lower()),
              ("Expires", s.expires)]
    fields = [(k, v) for k, v in fields if v is not None]
    width = max(len(k) for k, _ in fields) + 1
    return "".join(f"{k + ':':<{width}} {v}\n" for k, v in fields)


def format_event(event: WatchEvent) -> str:
    """A watch event: the whole set (``=``) or what changed (``+``, ``~``, ``-``)."""
    def line(mark: str, s: ServiceInfo) -> str:
        drained = " (drained)" if s.drain else ""
        return (f"{mark} {s.uuid} {s.name}.{s.environment} {s.region} {s.version} "
                f"{s.host}:{s.port}{drained}\n")  # fmt: skip

    if event.kind == "reset":
        head = f"[{event.index}] {len(event.services)} instance(s)\n"
        return head + "".join(line("=", s) for s in event.services)
    return f"[{event.index}]\n" + "".join(
        [line("+", s) for s in event.added] + [line("~", s) for s in event.changed]
        + [line("-", s) for s in event.removed])  # fmt: skip


def format_counts(title: str, counts: Mapping[str, int]) -> str:
    return format_table((title, "COUNT"), sorted(counts.items()))


def format_answer(answer: DNSAnswer) -> str:
    headers = ("NAME", "TTL", "TYPE", "DATA")
    text = format_table(headers, [(r.name, r.ttl, r.type, r.data) for r in answer.answer])
    if answer.additional:
        text += "\nadditional:\n" + format_table(
            headers, [(r.name, r.ttl, r.type, r.data) for r in answer.additional])
    return text


