"""Render each snapshot's ``/metrics`` once per variant and serve the bytes to every scraper.

``prometheus_client.aiohttp.make_aiohttp_handler`` renders the exposition on
every request (2-3 ms for the demo's metric set) and aiohttp compresses it on
every request again: 500 scrapers cost the serving loop seconds per tick.
:class:`ExpositionCache` keeps the semantics and drops the repetition:

* the variant is chosen exactly as ``make_aiohttp_handler`` chooses it: the
  format by ``prometheus_client.exposition.choose_encoder`` on the joined
  ``Accept`` headers (text 0.0.4, OpenMetrics 1.0 and the versions and
  escapings it knows), ``name[]`` query parameters restrict the families, and
  the coding by aiohttp's rule for ``enable_compression()`` (the first of
  ``deflate``, ``gzip`` found in the lower-cased ``Accept-Encoding``);
* a variant is rendered by the same encoder on the same registry, compressed
  as aiohttp would (zlib container for ``deflate``, gzip for ``gzip``), on the
  first request after the served data changed, and then served as it is;
* the cache is dropped when the ``generation`` callable returns a new value
  (the collector bumps it on every snapshot and decode error) and at the
  latest ``max_age_s`` after the first render, so the exporter-health gauges
  (snapshot age, ``up``) are never older than that while no snapshot arrives.

It holds at most ``max_variants`` variants per generation; odd ones beyond
that are rendered per request, not stored. This module only renders what the
registry holds; it never changes a value and never does I/O.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

__all__ = ["DEFAULT_MAX_AGE_S", "Exposition", "ExpositionCache", "negotiate_coding"]

#: Longest time a rendering is served while the data stays the same (seconds).
DEFAULT_MAX_AGE_S = 1.0

# aiohttp's ContentCoding order: the first one found in Accept-Encoding wins.
_CODINGS = ("deflate", "gzip")


def negotiate_coding(accept_encoding: str) -> str | None:
    """The content coding aiohttp's ``enable_compression()`` picks, ``None`` for identity."""
    value = (accept_encoding or "").lower()
    return next((c for c in _CODINGS if c in value), None)


@dataclass(frozen=True)
class Exposition:
    """One rendered variant: the body as sent and its two content headers."""

    body: bytes
    content_type: str
    content_encoding: str | None


class ExpositionCache:
    """Rendered ``/metrics`` variants of ``registry`` (use from one thread: the server's)."""

    def __init__(
        self,
        registry: Collector,
        *,
        generation: Callable[[], object] | None = None,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        max_variants: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not max_age_s > 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s!r}")
        self._registry = registry
        self._generation = generation or (lambda: None)
        self.max_age_s = float(max_age_s)
        self.max_variants = int(max_variants)
        self._clock = clock
        self._current: object = object()  # matches no generation
        self._since = 0.0
        self._entries: dict[tuple[str, str | None, tuple[str, ...] | None], Exposition] = {}
        #: renderings done (each is one encoder call over the registry)
        self.renders = 0
        #: requests answered from the cache
        self.hits = 0

    def get(
        self, accept: str, accept_encoding: str, names: Sequence[str] | None = None
    ) -> Exposition:
        """The variant for these request headers (``names``: the ``name[]`` parameters)."""
        encoder, content_type = choose_encoder(accept)
        coding = negotiate_coding(accept_encoding)
        restrict = tuple(names) if names else None
        self._expire()
        key = (content_type, coding, restrict)
        hit = self._entries.get(key)
        if hit is not None:
            self.hits += 1
            return hit
        plain = self._entries.get((content_type, None, restrict))
        if plain is not None:
            body = plain.body
        else:
            registry = self._registry
            if restrict is not None:
                # As prometheus_client's handler does for name[] (a CollectorRegistry feature).
                registry = registry.restricted_registry(list(restrict))  # type: ignore[attr-defined]
            body = encoder(registry)
            self.renders += 1
            if len(self._entries) < self.max_variants:
                self._entries[(content_type, None, restrict)] = Exposition(body, content_type, None)
        result = Exposition(_encode(body, coding), content_type, coding)
        if len(self._entries) < self.max_variants:
            self._entries[key] = result
        return result

    def _expire(self) -> None:
        generation = self._generation()
        now = self._clock()
        if generation != self._current or now - self._since >= self.max_age_s:
            self._entries.clear()
            self._current = generation
            self._since = now


def _encode(body: bytes, coding: str | None) -> bytes:
    if coding == "gzip":
        return gzip.compress(body)
    if coding == "deflate":
        return zlib.compress(body)  # zlib container, as aiohttp's "deflate" writes
    return body
