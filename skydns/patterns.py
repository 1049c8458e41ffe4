"""Queries: the pattern a DNS name or an HTTP ``?query=`` asks for, with
wildcards, and its grammar (SPEC.md §1)."""

from __future__ import annotations

from typing import Optional

from attrs import frozen

from skydns.names import MAX_LABEL, POSITIONS, WILDCARDS, Service


class PatternError(ValueError):
    """A DNS-style query pattern cannot be parsed (too many labels, bad label)."""


@frozen
class Pattern:
    """A parsed query: each position is a lower-cased label, or None for "any"."""

    uuid: Optional[str] = None
    host: Optional[str] = None
    version: Optional[str] = None
    region: Optional[str] = None
    name: Optional[str] = None
    environment: Optional[str] = None

    def labels(self) -> tuple[Optional[str], ...]:
        """The positions in `POSITIONS` order."""
        return (self.uuid, self.host, self.version, self.region, self.name, self.environment)

    def matches(self, service: Service) -> bool:
        return all(
            want is None or want == have
            for want, have in zip(self.labels(), service.labels(), strict=True)
        )

    def without_region(self) -> Pattern:
        """The same pattern with the region position set to any (for failover)."""
        return Pattern(
            uuid=self.uuid,
            host=self.host,
            version=self.version,
            region=None,
            name=self.name,
            environment=self.environment,
        )


def parse_pattern(labels: list[str] | tuple[str, ...]) -> Pattern:
    """Labels left of the domain (most specific first) to a `Pattern`.

    Fewer than six labels are padded on the left with wildcards.  More than
    six raise `PatternError` (the DNS side answers NXDOMAIN), and so does an
    empty label or one longer than 63 characters.
    """
    if len(labels) > len(POSITIONS):
        raise PatternError(
            f"too many labels: {len(labels)} (at most {len(POSITIONS)} before the domain)"
        )
    values: list[Optional[str]] = [None] * (len(POSITIONS) - len(labels))
    for label in labels:
        if not label:
            raise PatternError("empty label")
        if len(label) > MAX_LABEL:
            raise PatternError(f"label longer than {MAX_LABEL} characters")
        lowered = label.lower()
        values.append(None if lowered in WILDCARDS else lowered)
    return Pattern(*values)


def parse_query(query: str, domain: str) -> Pattern:
    """An HTTP ``?query=`` value (``rails.production``, with or without the
    domain suffix) to a `Pattern`; `PatternError` if it cannot be one.

    An empty query (or the domain alone) matches every instance.
    """
    text = query.strip().lower()
    if text.endswith("."):
        text = text[:-1]
    suffix = domain.strip().lower().rstrip(".")
    if suffix:
        if text == suffix:
            text = ""
        elif text.endswith("." + suffix):
            text = text[: -len(suffix) - 1]
    if not text:
        return Pattern()
    return parse_pattern(text.split("."))
