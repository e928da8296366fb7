"""What a value of a store is, apart from its bytes: kind, media type, entity tag.

A store answers ``describe(key)`` with a ``Description`` without producing the bytes, so
that ``HEAD`` and a conditional request (``If-None-Match``) never read pixels. The entity
tag is decided here, once, from what decides the bytes: the source file's version, the key,
the encoding, and the gateway's own version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["metadata", "chunk", "document", "thumbnail"]
#: st_dev, st_ino, st_mtime_ns, st_size of the source file, then of each file it depends
#: on (``Source.dependencies``: a BigDataViewer XML's HDF5 file)
Identity = tuple[int, ...]


def entity_tag(identity: Sequence[int], key: str, configuration: str, version: str = "") -> str:
    """A strong ETag: same source file version, key and encoding ⇒ same bytes.

    ``identity`` is the file's (device, inode, mtime, size); ``configuration`` is what
    else decides the bytes (codec, chunk shape; a digest for synthesized documents);
    ``version`` the gateway's, whose code also decides them."""
    material = "\x00".join([version, ",".join(str(n) for n in identity), key, configuration])
    return '"' + hashlib.blake2b(material.encode(), digest_size=16).hexdigest() + '"'


def modified_seconds(identity: Sequence[int]) -> float:
    """Last-Modified of an entity: the newest mtime among the (device, inode, mtime_ns,
    size) quadruples of the files it comes from."""
    return max(identity[2::4]) / 1e9


def content_digest(data: bytes) -> str:
    """A short digest of bytes, for ETags of entities that are small documents."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def media_type_for(key: str) -> str:
    if key.endswith(".json"):
        return "application/json"
    if key.endswith(".xml"):
        return "application/xml"
    return "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Description:
    """What HTTP needs to describe a value without its bytes."""

    kind: Kind
    media_type: str
    etag: str  # strong, quoted
    modified: float  # Last-Modified, seconds since the epoch


@dataclass(frozen=True, slots=True)
class StoreItem:
    """A value of a store, with its description."""

    data: bytes
    description: Description

    @property
    def kind(self) -> Kind:
        return self.description.kind
