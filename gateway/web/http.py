"""HTTP semantics of a read-only object store, as pure functions: Range, ETag, conditionals.

Routes describe what they serve as an ``Entity`` and ask ``plan_response`` what to send
(status, headers, body); nothing here touches starlette, sockets or the disk, so every
rule has its own small unit test (tests/unit/test_http.py).

Choices, where RFC 9110 leaves some:
- A ``Range`` with several ranges is answered with the whole entity (200): zarr clients
  never ask for several, and a multipart body would break their size checks.
- A ``Range`` that is not syntactically valid, or not in ``bytes``, is ignored (200).
  Only ASCII digits count; a number of more digits than any size has (``bytes=9999…-``,
  thousands of them) is as large as it says, so it is clamped or unsatisfiable, never an
  ``int()`` of thousands of digits.
- An ``If-Modified-Since`` or ``If-Range`` date that is not a valid HTTP date (garbage, a
  year past 9999, absurd lengths) is ignored, as RFC 9110 asks.
- A satisfiable range is clamped to the entity (``bytes=0-999999`` of 10 bytes is
  ``0-9``); one that starts at or beyond the end, or a suffix of 0 bytes, is a 416 with
  ``Content-Range: bytes */<size>``.
- ``If-None-Match`` wins over ``If-Modified-Since``; either gives 304 for GET and HEAD.
- ``If-Range`` (an ETag or a date) honours the range only while the entity is unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime

from gateway.config.settings import ServerSettings
from gateway.store.entity import Description, StoreItem

#: Never on a response: chunk sizes must be the stored sizes (zarr clients check them).
FORBIDDEN_HEADERS = ("content-encoding",)
ERROR_CACHE_CONTROL = "no-store"

#: Digits of the largest byte position taken at its value; longer numbers are clamped to
#: ``_HUGE`` (larger than any entity), which keeps their meaning.
_MAX_DIGITS = 18
_HUGE = 10**_MAX_DIGITS
#: No HTTP date is longer (IMF-fixdate: 29 characters; the obsolete formats a few more).
_MAX_DATE_CHARS = 64


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` to ``stop`` (exclusive) of an entity of ``size`` bytes."""

    start: int
    stop: int
    size: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.stop <= self.size:
            raise ValueError(f"invalid byte range {self.start}-{self.stop} of {self.size}")

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.stop - 1}/{self.size}"


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    """A range that selects nothing of an entity of ``size`` bytes (→ 416)."""

    size: int

    @property
    def content_range(self) -> str:
        return f"bytes */{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | Unsatisfiable | None:
    """The byte range a ``Range`` header asks for; None for the whole entity.

    None also for a header to be ignored: absent, malformed, another unit, or several
    ranges (see the module docstring)."""
    if header is None:
        return None
    spec = _single_spec(header)
    if spec is None:
        return None
    first, last = spec
    if first is None:  # suffix: the last n bytes
        assert last is not None
        if last == 0 or size == 0:
            return Unsatisfiable(size)
        return ByteRange(max(0, size - last), size, size)
    if last is not None and last < first:
        return None  # a-b with b < a is invalid syntax: ignored
    if first >= size:
        return Unsatisfiable(size)
    stop = size if last is None else min(last + 1, size)
    return ByteRange(first, stop, size)


def _single_spec(header: str) -> tuple[int | None, int | None] | None:
    """(first, last) byte positions of a one-range ``bytes=`` header (None where a
    position is absent), or None for a header to ignore. String operations only: no
    regular expression to backtrack over a long header."""
    unit, equals, specs = header.partition("=")
    if not equals or unit.strip().lower() != "bytes" or "," in specs:
        return None
    first, dash, last = (part.strip() for part in specs.partition("-"))
    if not dash or not (first or last):
        return None
    if not all(text.isascii() and text.isdigit() for text in (first, last) if text):
        return None  # str.isdigit alone admits "²" and "٣"
    return _position(first), _position(last)


def _position(digits: str) -> int | None:
    """The value of ASCII digits (None when empty), clamped to ``_HUGE``: a number longer
    than any size means "beyond the end", and int() of thousands of digits raises."""
    if not digits:
        return None
    digits = digits.lstrip("0") or "0"
    return _HUGE if len(digits) > _MAX_DIGITS else int(digits)


def http_date(seconds: float) -> str:
    """``Sun, 06 Nov 1994 08:49:37 GMT`` (IMF-fixdate), whole seconds."""
    return _http_date(int(seconds))


@functools.lru_cache(maxsize=1024)
def _http_date(seconds: int) -> str:
    """Cached: every response about an entity carries its Last-Modified, and hot entities
    are few (a source file's mtime)."""
    return formatdate(seconds, usegmt=True)


def parse_http_date(value: str | None) -> float | None:
    """Seconds since the epoch of an HTTP date, or None when absent or invalid."""
    if not value or len(value) > _MAX_DATE_CHARS or not value.isascii():
        return None
    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:
            return None
        return parsed.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None  # garbage; a year past 9999 (ValueError) or past C's int (OverflowError)


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def etag_matches(header: str | None, etag: str) -> bool:
    """``If-None-Match`` against ``etag`` (weak comparison, as RFC 9110 asks for it)."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(_opaque(candidate) == _opaque(etag) for candidate in header.split(","))


@dataclass(frozen=True, slots=True)
class Entity:
    """What a route serves: the bytes and what describes them."""

    data: bytes
    media_type: str
    etag: str
    modified: float  # seconds since the epoch (the source file's mtime)
    cache_control: str


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def not_modified(entity: Entity, request_headers: Mapping[str, str]) -> bool:
    """Whether a GET/HEAD with these conditional headers gets a 304."""
    if_none_match = request_headers.get("if-none-match")
    if if_none_match is not None:
        return etag_matches(if_none_match, entity.etag)
    since = parse_http_date(request_headers.get("if-modified-since"))
    return since is not None and int(entity.modified) <= since


def range_applies(entity: Entity, request_headers: Mapping[str, str]) -> bool:
    """``If-Range``: honour ``Range`` only if the entity is the one the client has."""
    condition = request_headers.get("if-range")
    if condition is None:
        return True
    condition = condition.strip()
    if condition.startswith('"'):
        return condition == entity.etag  # strong comparison
    since = parse_http_date(condition)
    return since is not None and int(entity.modified) == int(since)


#: The request headers that can change the answer about an entity; most requests have none.
CONDITIONAL_HEADERS = frozenset({b"range", b"if-none-match", b"if-modified-since", b"if-range"})


def conditional_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Those of ``CONDITIONAL_HEADERS`` a request has (lower-case names), from its raw
    ASGI headers: ``{}`` means "the whole entity", decided without parsing every header."""
    found: dict[str, str] = {}
    for name, value in raw:
        if name in CONDITIONAL_HEADERS:
            found[name.decode("latin-1")] = value.decode("latin-1")
    return found


@functools.lru_cache(maxsize=4096)
def whole_entity_headers(
    etag: str, modified: float, cache_control: str, media_type: str, size: int
) -> tuple[tuple[bytes, bytes], ...]:
    """The raw headers of a 200 with the whole entity (``size`` bytes): the same for every
    request of it, so built once per entity (hot chunks are asked for again and again)."""
    entity = Entity(b"", media_type, etag, modified, cache_control)
    headers = {**entity_headers(entity), "Content-Type": media_type, "Content-Length": str(size)}
    return tuple((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items())


def whole_response_headers(entity: Entity) -> tuple[tuple[bytes, bytes], ...]:
    """The raw headers of a 200 with the whole entity."""
    return whole_entity_headers(
        entity.etag, entity.modified, entity.cache_control, entity.media_type, len(entity.data)
    )


def whole_item_headers(item: StoreItem, server: ServerSettings) -> tuple[tuple[bytes, bytes], ...]:
    """``whole_response_headers`` of a store's value, without building its ``Entity``
    (the hot path's answer)."""
    d = item.description
    cache_control = cache_control_for(d.kind, server)
    return whole_entity_headers(d.etag, d.modified, cache_control, d.media_type, len(item.data))


def entity_of(item: StoreItem | Description, server: ServerSettings) -> Entity:
    """The HTTP entity of a store's value (a description alone: an entity without bytes)."""
    data, d = (item.data, item.description) if isinstance(item, StoreItem) else (b"", item)
    return Entity(data, d.media_type, d.etag, d.modified, cache_control_for(d.kind, server))


def cache_control_for(kind: str, server: ServerSettings) -> str:
    """``Cache-Control`` of a value of ``kind``: chunks have their own policy."""
    return server.cache_control_chunks if kind == "chunk" else server.cache_control_metadata


def revalidates(condition: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` is answered with a 304 from the entity tag alone: it
    names ``etag``. Not ``*``, which only the value's existence can answer."""
    return condition is not None and condition.strip() != "*" and etag_matches(condition, etag)


def entity_headers(entity: Entity) -> dict[str, str]:
    """Headers every answer about the entity carries (200, 206, 304, 416)."""
    return {
        "ETag": entity.etag,
        "Last-Modified": http_date(entity.modified),
        "Cache-Control": entity.cache_control,
        "Accept-Ranges": "bytes",
    }


def plan_response(method: str, request_headers: Mapping[str, str], entity: Entity) -> Reply:
    """Status, headers and body for a GET or HEAD of ``entity``.

    ``request_headers`` must be case-insensitive or lower-case (starlette's are)."""
    headers = entity_headers(entity)
    if not_modified(entity, request_headers):
        return Reply(304, headers, b"")
    size = len(entity.data)
    wanted = parse_range(request_headers.get("range"), size)
    if wanted is not None and not range_applies(entity, request_headers):
        wanted = None
    if isinstance(wanted, Unsatisfiable):
        headers["Content-Range"] = wanted.content_range
        return Reply(416, headers, b"")
    headers["Content-Type"] = entity.media_type
    if wanted is None:
        status, body = 200, entity.data
    else:
        status, body = 206, entity.data[wanted.start : wanted.stop]
        headers["Content-Range"] = wanted.content_range
    headers["Content-Length"] = str(len(body))
    return Reply(status, headers, b"" if method == "HEAD" else body)
