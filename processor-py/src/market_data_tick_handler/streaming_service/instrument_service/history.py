"""The versions of each instrument: (effective from, until or None, definition), µs since the epoch UTC."""

from __future__ import annotations

from bisect import bisect_right

from .definitions import InstrumentDefinition


class InstrumentHistory:
    def __init__(self) -> None:
        # (exchange, our symbol) -> versions, oldest first; ``until`` None for the current one
        self._versions: dict[tuple[str, str], list[tuple[int, int | None, InstrumentDefinition]]] = {}

    def begin(self, definition: InstrumentDefinition, from_us: int) -> None:
        """A new version from ``from_us``; the current one, if any, ends there."""
        versions = self._versions.setdefault((definition.exchange, definition.symbol), [])
        self.end(definition.exchange, definition.symbol, from_us)
        versions.append((from_us, None, definition))

    def end(self, exchange: str, symbol: str, until_us: int) -> None:
        versions = self._versions.get((exchange, symbol))
        if versions and versions[-1][1] is None:
            start, _, definition = versions[-1]
            versions[-1] = (start, until_us, definition)

    def versions(self, exchange: str, symbol: str) -> list[tuple[int, int | None, InstrumentDefinition]]:
        return list(self._versions.get((exchange, symbol), ()))

    def at(self, exchange: str, symbol: str, at_us: int) -> InstrumentDefinition | None:
        """The version in force at ``at_us`` (from <= at < until), None if there was none."""
        versions = self._versions.get((exchange, symbol))
        if not versions:
            return None
        i = bisect_right([v[0] for v in versions], at_us) - 1
        if i < 0:
            return None
        _, until, definition = versions[i]
        return definition if until is None or at_us < until else None
