"""The settings: one frozen model per ``[section]`` of the config file, and ``Settings`` holding them.

Everything the running service needs is here and nowhere else (no globals): ``create_app`` and
the CLI take a ``Settings``. Every key is documented in ``config.example.toml``; comments here
say why. Values are checked when built, and a bad one raises ``SettingsError`` naming its key.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from itertools import permutations
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from adapters.base import DEFAULT_MAX_CHUNK_BYTES, DEFAULT_MAX_DATASETS, OpenOptions
from gateway.config.errors import SettingsError, named_errors
from gateway.config.sizes import ByteSize

#: Valid compression levels per codec (zstd's negative levels are its fast modes).
CODEC_LEVELS = {
    "auto": range(1, 10),  # a level both zstd and blosc-zstd take
    "zstd": range(-7, 23),
    "blosc": range(10),
    "blosc-zstd": range(10),
    "blosc-lz4": range(10),
    "gzip": range(10),
    "none": range(-1000, 1000),
}
#: The codecs served chunks can be set to (``[chunks] codec``, ``[browse] codec``).
Codec = Literal["auto", "zstd", "blosc", "blosc-zstd", "blosc-lz4", "gzip", "none"]
#: What a process holds besides its byte-bounded caches: an idle server with the demo data
#: open measured 103 MiB RSS; the margin leaves room for chunks in flight.
RSS_MARGIN_BYTES = 256 * 1024**2
#: First URL segments the gateway answers itself (``s``: signed tokens; the rest: service
#: routes), reserved even when auth or metrics are off, so turning them on never hides a root.
RESERVED_ROOT_NAMES = frozenset({"s", "health", "ready", "metrics"})
#: A shorter signing key could be guessed (HMAC-SHA256 keys: 32 random bytes are usual).
MIN_KEY_BYTES = 16
#: TOML and JSON have arrays; the settings keep immutable tuples.
Strings = Annotated[tuple[str, ...], Field(strict=False)]
HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^/\s]+")]
Segment = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]*$")]  # one URL path segment
_URL_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")
_ORIGIN = re.compile(r"https?://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")  # host or [IPv6]
_AXIS_LETTERS = re.compile(r"^(?!.*(.).*\1)[tczyx]+$")
_WEB_URL = re.compile(r"https?://[^\s/]+(/\S*)?")
_SPDX_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]*")
_NCBI_TAXON = re.compile(r"NCBI:txid\d+")
_FBBI_TERM = re.compile(r"obo:FBbi_\d+")
_UNSET_VARIABLE = re.compile(r"\$(\w+|\{\w+\})")


class Section(BaseModel):
    """A ``[section]``: frozen, unknown keys refused, typed strictly — TOML is typed, so a
    string for a number is a mistake worth reporting (the loader types environment strings)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    def __init__(self, **values: Any) -> None:
        with named_errors():
            super().__init__(**values)


def _power_of_two(value: int | None) -> int | None:
    if value is not None and value & (value - 1):
        raise ValueError(f"must be a power of two (served y/x chunks are), not {value}")
    return value


#: At most this many inner chunks per shard: a shard is computed whole, in one request's
#: budget, and its index holds 16 bytes per inner chunk.
MAX_CHUNKS_PER_SHARD = 4096


def _shard(value: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
    if value is not None and value[0] * value[1] * value[2] > MAX_CHUNKS_PER_SHARD:
        raise ValueError(f"a shard holds at most {MAX_CHUNKS_PER_SHARD} inner chunks, not {value}")
    return value


#: Inner chunks per shard along z, y and x (``[chunks] shard``).
Shard = Annotated[
    tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]],
    Field(strict=False),
    AfterValidator(_shard),
]


class ChunkRule(Section):
    """A ``[[chunks.rules]]`` entry: chunk shapes for the datasets whose URL path
    (``<root>/<file>``) matches ``pattern`` (fnmatch: ``*`` also crosses ``/``); the first
    matching rule wins, and what it leaves unset comes from ``[chunks]``."""

    pattern: str = Field(min_length=1)
    yx: int | None = Field(default=None, ge=1)
    z: int | None = Field(default=None, ge=1)
    target_bytes: ByteSize | None = Field(default=None, ge=1)
    shard: Shard | None = None

    _yx_power_of_two = field_validator("yx")(_power_of_two)


class ChunkSettings(Section):
    """How served chunks are shaped and encoded. ``auto`` level 1 by default: stored deflate
    chunks (HDF5's deflate, after a byte shuffle or not; TIFF deflate tiles) and HDF5's
    shuffled zstd chunks are sent as stored, each stream the one block of a blosc frame: no
    codec work on the server, and readers decode what h5py would (3.2-4.6x the voxels per
    second of transcoding, whole-level reads as fast or faster: bench/README.md). Other
    chunks are encoded: zstd-1, which encodes 4-7x faster than gzip -1 for ~20% larger
    uint16 chunks, since chunks are encoded while a viewer waits; but blosc-zstd where the
    stored chunks are byte-shuffled (HDF5's shuffle before LZF, fletcher32...): made from
    the stored bytes still shuffled, it costs no more CPU than zstd-1 there and is 20-30%
    smaller. Every client we target decodes all three (bench/bench_codecs.py,
    tests/viewers). Another codec set is used for every chunk not sent as stored (zstd and
    blosc chunks always are; unshuffled deflate ones only as gzip members, with ``gzip``).

    ``z`` unset follows the source: a source chunked in z (HDF5, BigDataViewer, Imaris, TIFF
    tiles with depth) is served in chunks of its own depth, a plane-per-page stack one plane
    per chunk. Such 3-D chunks are kept within ``target_bytes`` (uncompressed), halving the
    longest of z and y/x: 2 MiB is where serving a gzip-1 64x128x128 uint16 volume stops
    getting faster per voxel (in-process, 2 threads: 0.5 MiB chunks 48, 1 MiB 56, 2 MiB 63-66,
    4 MiB 47-65 Mvoxel/s; one plane per chunk 9-21), and it is the 64x128x128 uint16 chunk of
    the converted copies viewers are compared with (issue 11). A set ``z`` is taken as given."""

    codec: Codec = "auto"
    level: int = 1
    yx: int = Field(default=512, ge=1)
    z: int | None = Field(default=None, ge=1)  # None: the source's chunk depth (1: one plane)
    #: At most this many planes per chunk: deeper chunks (the source's, or ``z``) are halved
    #: until they fit, so slabs still align with the stored chunks. None: no bound. The
    #: browsing view's (``BrowseSettings``) is set here.
    max_z: int | None = Field(default=None, ge=1)
    target_bytes: ByteSize = Field(default=2 * 1024**2, ge=1)
    min_yx: int = Field(default=128, ge=1)
    max_yx: int = Field(default=2048, ge=1)
    omit_empty: bool = True  # as zarr's write_empty_chunks=False
    passthrough: bool = True
    #: Opt-in virtual shards (zarr ``sharding_indexed``): inner chunks (the chunks above)
    #: per shard along z, y and x; t and c hold one. None: unsharded arrays.
    shard: Shard | None = None
    rules: Annotated[tuple[ChunkRule, ...], Field(strict=False)] = ()

    _yx_power_of_two = field_validator("yx", "min_yx", "max_yx")(_power_of_two)

    @model_validator(mode="after")
    def _consistent(self) -> ChunkSettings:
        levels = CODEC_LEVELS[self.codec]
        if self.level not in levels:
            raise ValueError(f"level for {self.codec} must be {levels.start}..{levels.stop - 1}")
        if not self.min_yx <= self.yx <= self.max_yx:
            raise ValueError("yx must lie between min_yx and max_yx")
        for rule in self.rules:
            if rule.yx is not None and not self.min_yx <= rule.yx <= self.max_yx:
                raise ValueError(f"rules: yx of {rule.pattern!r} must lie between min_yx and max_yx")
        return self

    def for_path(self, url_path: str) -> ChunkSettings:
        """These settings with the first rule matching ``url_path`` applied (no rules left:
        what a dataset's tree is built with)."""
        rule = next((r for r in self.rules if fnmatch.fnmatchcase(url_path, r.pattern)), None)
        update: dict[str, Any] = {"rules": ()}
        if rule is not None:
            update |= {k: v for k, v in rule.model_dump(exclude={"pattern"}).items() if v is not None}
        return self.model_copy(update=update)


class CacheSettings(Section):
    """Memory bounds: LRU caches bounded in bytes (and open files in count)."""

    chunk_bytes: ByteSize = Field(default=256 * 1024**2, ge=0)
    tile_bytes: ByteSize = Field(default=512 * 1024**2, ge=0)
    open_files: int = Field(default=64, ge=1)
    open_file_bytes: ByteSize = Field(default=256 * 1024**2, ge=0)
    stat_interval_seconds: float = Field(default=1.0, ge=0)
    # larger decoded chunks (or decompression bombs) are refused, not allocated; 256 MiB admits
    # one-strip uint16 planes up to 11k x 11k, and one such chunk per read thread is in flight
    max_chunk_bytes: ByteSize = Field(default=DEFAULT_MAX_CHUNK_BYTES, ge=1024)

    @property
    def rss_budget_bytes(self) -> int:
        """The memory one process stays within (README, "Memory budget"): the three pools
        plus a fixed margin for the interpreter, libraries, trees and chunks in flight."""
        return self.chunk_bytes + self.tile_bytes + self.open_file_bytes + RSS_MARGIN_BYTES


class ServerSettings(Section):
    """HTTP, worker pools, response headers, links and limits on slow clients."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    threads: int = Field(default=max(4, 2 * (os.cpu_count() or 2)), ge=1)
    heavy_threads: int = Field(default=0, ge=0)  # 0: threads // 2 (heavy_pool_threads)
    request_seconds: float = Field(default=30.0, gt=0)
    cors_origins: Strings = ("*",)
    listing_limit: int = 10000
    cache_control_metadata: str = "public, max-age=60"  # metadata can change with the file
    cache_control_chunks: str = "public, max-age=86400"  # revalidated by ETag once stale
    cache_control_pages: str = "no-cache"
    root_path: str = ""
    instance: str = Field(default="", pattern=r"^[A-Za-z0-9._:@-]*$")
    access_log: Literal["text", "json", "off"] = "text"
    server_timing: bool = True
    metrics: bool = True
    # links start with public_url, else with forwarded headers from trusted_proxies only,
    # else with the address the client reached — never with the client's own Host header
    public_url: str = ""
    trusted_proxies: Strings = ()
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    keep_alive_seconds: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=1024, ge=1)
    max_header_bytes: ByteSize = Field(default=16 * 1024, ge=1024)

    @property
    def heavy_pool_threads(self) -> int:
        """Threads of the pool for synthesized-level chunks (``heavy_threads``, or auto)."""
        return self.heavy_threads or max(1, self.threads // 2)

    @field_validator("root_path")
    @classmethod
    def _mount_path(cls, value: str) -> str:
        if value and not _URL_PATH.fullmatch(value):
            raise ValueError(f"must look like /zarr (no trailing /), not {value!r}")
        return value

    @field_validator("public_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        origin, path = _split_url(value)
        if value and (not _ORIGIN.fullmatch(origin) or (path and not _URL_PATH.fullmatch(path))):
            raise ValueError(f"must look like https://zarr.example.org/zarr, not {value!r}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: tuple[str, ...]) -> tuple[str, ...]:
        for proxy in proxies:
            try:
                if proxy != "*":
                    ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an IP address, a network (10.0.0.0/8) or '*'") from None
        return proxies

    @model_validator(mode="after")
    def _same_mount(self) -> ServerSettings:
        path = _split_url(self.public_url)[1]
        if self.public_url and self.root_path and path != self.root_path:
            raise ValueError(f"public_url's path ({path or '/'}) must equal root_path ({self.root_path})")
        return self


def _split_url(url: str) -> tuple[str, str]:
    """``scheme://authority`` of an absolute URL, and its path without a trailing ``/``."""
    scheme, sep, rest = url.partition("://")
    origin = scheme + sep + rest.split("/", 1)[0] if sep else url
    return origin, url[len(origin) :].rstrip("/")


class ViewerSettings(Section):
    """Base URLs of the viewers the dataset pages link to (institutions host their own)."""

    neuroglancer: HttpUrl = "https://neuroglancer-demo.appspot.com/"
    vizarr: HttpUrl = "https://hms-dbmi.github.io/vizarr/"
    validator: HttpUrl = "https://ome.github.io/ome-ngff-validator/"


class Hdf5Settings(Section):
    """HDF5 sources. ``lock_free`` false sends every read through h5py under one lock (for
    diagnosis: bench/bench_hdf5.py); ``axes``: fnmatch pattern → axis letters, first match wins."""

    lock_free: bool = True
    axes: dict[str, str] = Field(default_factory=dict)
    max_datasets: int = Field(default=DEFAULT_MAX_DATASETS, ge=1)  # each costs ~4 ms at open

    @field_validator("axes")
    @classmethod
    def _axis_letters(cls, axes: dict[str, str]) -> dict[str, str]:
        return _axis_table(axes)

    def open_options(self) -> OpenOptions:
        return OpenOptions(
            lock_free=self.lock_free, axes=tuple(self.axes.items()), max_datasets=self.max_datasets
        )


class TiffSettings(Section):
    """TIFF sources. ``axes``: fnmatch pattern (over the file's path, or its name) → axis
    letters, one per dimension of each series as tifffile lists them (``QYX`` → ``tyx``),
    first match wins: for stacks whose files do not say what their pages are."""

    axes: dict[str, str] = Field(default_factory=dict)

    @field_validator("axes")
    @classmethod
    def _axis_letters(cls, axes: dict[str, str]) -> dict[str, str]:
        return _axis_table(axes)


def _axis_table(axes: dict[str, str]) -> dict[str, str]:
    """``axes`` when every value is distinct letters of tczyx including y and x."""
    for pattern, letters in axes.items():
        if not _AXIS_LETTERS.match(letters.lower()) or not {"y", "x"} <= set(letters.lower()):
            raise ValueError(
                f"{pattern!r} must be distinct letters of tczyx including y and x, not {letters!r}"
            )
    return axes


class AuthSettings(Section):
    """Signed URLs, for sites without a proxy that authenticates. The key (``signing_key_file``,
    environment variables expanded, or ``signing_key``) is never shown in a repr, and a key
    file inside a root is refused: whoever can save a file there could have the gateway read it."""

    protect: Strings = ()  # roots that answer only with a token ("*": all, and the listing)
    signing_key: str = Field(default="", repr=False)
    signing_key_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.protect or self.signing_key or self.signing_key_file)

    @model_validator(mode="after")
    def _one_key(self) -> AuthSettings:
        if self.signing_key and self.signing_key_file:
            raise ValueError("set signing_key or signing_key_file, not both (which would sign?)")
        return self

    @property
    def key_path(self) -> Path | None:
        """The signing key file, environment variables and ``~`` expanded; None if unset."""
        return Path(os.path.expandvars(self.signing_key_file)).expanduser() if self.signing_key_file else None

    def key(self) -> bytes:
        """The signing key; raises SettingsError naming the key that is missing, unreadable
        or short (checked at start: a worker must not fail on its first request)."""
        path = self.key_path
        if path is None:
            if not self.signing_key:
                raise SettingsError.of([("auth.signing_key_file", f"not set; {self._needs_key}")])
            key, where = self.signing_key.encode(), "auth.signing_key"
        else:
            unset = _UNSET_VARIABLE.search(str(path))
            if unset:  # expandvars leaves unknown variables as they are
                problem = f"{unset.group(0)} is not set in the environment ({self.signing_key_file})"
                raise SettingsError.of([("auth.signing_key_file", problem)])
            try:
                key, where = path.read_bytes().strip(), "auth.signing_key_file"
            except OSError as exc:
                raise SettingsError(f"auth.signing_key_file: cannot read {path}: {exc.strerror}") from exc
        if len(key) < MIN_KEY_BYTES:
            problem = f"{len(key)} bytes; a signing key needs at least {MIN_KEY_BYTES}"
            raise SettingsError.of([(where, problem)])
        return key

    @property
    def _needs_key(self) -> str:
        what = f"protect = {list(self.protect)}" if self.protect else "signed URLs"
        return f"{what} needs a signing key of at least {MIN_KEY_BYTES} bytes"


class PyramidSettings(Section):
    """Levels computed on demand for images without enough native ones (gateway/levels/pyramid.py).
    Label images have their own method: ``mode`` and ``nearest`` never invent values."""

    enabled: bool = True
    max_levels: int = Field(default=0, ge=0)  # native levels included; 0: no limit
    method: Literal["mean", "nearest"] = "mean"
    label_method: Literal["mode", "nearest"] = "mode"


class MetadataSettings(Section):
    """Display windows estimated from one plane of the coarsest native level, if it is small;
    ``consolidated``: every group's ``zarr.json`` carries zarr-python's consolidated metadata
    of the nodes below it (``gateway/ngff/consolidated.py``), unless that makes it larger
    than ``consolidated_max_bytes``."""

    estimate_windows: bool = True
    window_sample_bytes: ByteSize = Field(default=16 * 1024**2, ge=0)
    consolidated: bool = True
    consolidated_max_bytes: ByteSize = Field(default=1024**2, ge=0)


class ZarrV2Settings(Section):
    """The Zarr v2 / OME-Zarr 0.4 view at ``/<prefix>/<root>/<file>/``."""

    enabled: bool = True
    prefix: str = Field(default="v2", pattern=r"^[A-Za-z0-9_-]+$")


class BrowseSettings(Section):
    """The browsing view at ``/<prefix>/<root>/<file>/``, which the dataset pages' viewer
    links open: the same datasets (the same groups, levels, metadata and pixels), but every
    array whose chunks are deeper than ``max_z`` planes is cut in slabs of at most that
    many, unsharded, encoded as ``codec``. Arrays not cut are the canonical view's own.

    Why two views of one dataset: a viewer showing a plane (Neuroglancer's xy panel, Viv)
    fetches whole chunks for one plane of each, so thin slabs send it half of a 64-plane
    block's bytes, while scripts, dask and tensorstore reading whole levels want
    the blocks the source stores (sent as stored, no codec work). Neuroglancer reads a
    shard inner chunk by inner chunk after its index, so shards cannot give both in one
    array (bench/README.md, ``bench_viewport.py``). Chunk keys name other regions in the
    two views, so they are separate URLs: a proxy cache never mixes them."""

    enabled: bool = True
    prefix: str = Field(default="browse", pattern=r"^[A-Za-z0-9_-]+$")
    #: 32 by measurement (bench/README.md, the browsing view): 16 fills plane views faster
    #: still, but Neuroglancer's 4-panel view of a volume without a pyramid of its own then
    #: needs 3-4x the requests of the 64-plane copy and fills in 1.22-1.26x its time.
    max_z: int = Field(default=32, ge=1)
    codec: Codec = "none"

    def chunk_settings(self, chunks: ChunkSettings) -> ChunkSettings:
        """The chunk settings of a dataset's browsing view, from those of its canonical one
        (``chunks``, its rules applied): slabs of at most ``max_z`` planes, unsharded, in
        ``codec`` (at the canonical level where the codec takes it, else at 1)."""
        bound = self.max_z if chunks.max_z is None else min(self.max_z, chunks.max_z)
        level = chunks.level if chunks.level in CODEC_LEVELS[self.codec] else 1
        return chunks.model_copy(update={"max_z": bound, "codec": self.codec, "level": level, "shard": None})


class LabelSettings(Section):
    """A ``[[labels]]`` entry: the image at URL path ``source`` served as label image ``name``
    of the image at ``image``, in ``<image>/labels/<name>/``."""

    image: str = Field(min_length=1)
    source: str = Field(min_length=1)
    name: Segment = ""  # default: the source file's name without its suffixes

    @field_validator("name")
    @classmethod
    def _not_dots(cls, name: str) -> str:
        if name in (".", ".."):
            raise ValueError(f"{name!r} is not a name")
        return name

    @property
    def label_name(self) -> str:
        if self.name:
            return self.name
        stem = self.source.rstrip("/").rpartition("/")[2].split(".")[0]
        return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "labels"


class RoCrateSettings(Section):
    """A ``[[rocrate]]`` entry: ``ro-crate-metadata.json`` for datasets matching ``dataset``.
    The identifiers are checked at start: a crate is read by machines, and a typo in a
    term would be served to every client without a word."""

    dataset: str = Field(min_length=1)
    name: str = ""
    description: str = ""
    license: str = ""
    organism: str = ""  # an NCBI taxon (NCBI:txid9606)
    imaging_method: str = ""  # an FBbi term (obo:FBbi_00000246)

    @field_validator("license")
    @classmethod
    def _license(cls, value: str) -> str:
        if value and not (_WEB_URL.fullmatch(value) or _SPDX_ID.fullmatch(value)):
            raise ValueError(
                f"{value!r} is neither a URL (https://creativecommons.org/licenses/by/4.0/) "
                "nor an SPDX identifier (CC-BY-4.0)"
            )
        return value

    @field_validator("organism")
    @classmethod
    def _taxon(cls, value: str) -> str:
        if value and not (_WEB_URL.fullmatch(value) or _NCBI_TAXON.fullmatch(value)):
            raise ValueError(f"{value!r} is not an NCBI taxon such as NCBI:txid9606 (or its URL)")
        return value

    @field_validator("imaging_method")
    @classmethod
    def _fbbi(cls, value: str) -> str:
        if value and not (_WEB_URL.fullmatch(value) or _FBBI_TERM.fullmatch(value)):
            raise ValueError(f"{value!r} is not an FBbi term such as obo:FBbi_00000246 (or its URL)")
        return value


class Settings(BaseSettings):
    """``[roots]`` (URL name → directory), the sections, and the ``[[labels]]`` and
    ``[[rocrate]]`` arrays. Built in code it is its arguments over the defaults, nothing else
    (tests and in-process users get what they ask for); ``gateway.config.load_settings``
    layers a file, the environment (named by ``model_config``) and the command line."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_prefix="OME_ZARR_GATEWAY__", env_nested_delimiter="__"
    )

    roots: dict[str, Path] = Field(default_factory=dict)
    server: ServerSettings = Field(default_factory=ServerSettings)
    chunks: ChunkSettings = Field(default_factory=ChunkSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    viewers: ViewerSettings = Field(default_factory=ViewerSettings)
    hdf5: Hdf5Settings = Field(default_factory=Hdf5Settings)
    tiff: TiffSettings = Field(default_factory=TiffSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    pyramids: PyramidSettings = Field(default_factory=PyramidSettings)
    metadata: MetadataSettings = Field(default_factory=MetadataSettings)
    zarr_v2: ZarrV2Settings = Field(default_factory=ZarrV2Settings)
    browse: BrowseSettings = Field(default_factory=BrowseSettings)
    labels: tuple[LabelSettings, ...] = ()
    rocrate: tuple[RoCrateSettings, ...] = ()

    def __init__(self, **values: Any) -> None:
        with named_errors():
            super().__init__(**values)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the loader layers file, environment and command line

    @model_validator(mode="after")
    def _check(self) -> Settings:
        for name in self.roots:
            if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or name in (".", ".."):
                raise ValueError(
                    f"root name {name!r}: use letters, digits, '-', '_' or '.' (not '.' or '..')"
                )
        for view, section in (("Zarr v2", "zarr_v2"), ("browsing", "browse")):
            prefix = getattr(self, section).prefix
            if getattr(self, section).enabled and prefix in self.roots:
                raise ValueError(
                    f"root {prefix!r} collides with the {view} view's URL prefix: "
                    f"rename the root or set {section}.prefix"
                )
        if self.zarr_v2.enabled and self.browse.enabled and self.zarr_v2.prefix == self.browse.prefix:
            raise ValueError(f"zarr_v2.prefix and browse.prefix are both {self.browse.prefix!r}")
        reserved = sorted(RESERVED_ROOT_NAMES & set(self.roots))
        if reserved:
            raise ValueError(
                f"root name {reserved[0]!r} is a URL prefix the gateway reserves "
                f"({', '.join(sorted(RESERVED_ROOT_NAMES))}): rename the root"
            )
        _check_disjoint(self.roots)
        _check_key_outside_roots(self.auth.key_path, self.roots)
        unknown = [name for name in self.auth.protect if name != "*" and name not in self.roots]
        if unknown and self.roots:
            raise ValueError(f"auth.protect names roots that are not configured: {unknown}")
        problems = _label_problems(self.labels, self.roots) + _pattern_problems(self)
        if problems:
            raise SettingsError.of(problems)
        return self

    @property
    def view_prefixes(self) -> tuple[str, ...]:
        """URL prefixes of the datasets' other views that are on (Zarr v2, browsing)."""
        return tuple(view.prefix for view in (self.zarr_v2, self.browse) if view.enabled)

    def check_roots(self) -> None:
        """Raise if a root is not an existing directory (checked when serving, not when
        parsing, so a config can be validated on another machine)."""
        if not self.roots:
            raise SettingsError("no roots configured: give a directory or a [roots] table")
        for name, path in self.roots.items():
            if not path.is_dir():
                raise SettingsError(f"root {name!r}: {path} is not a directory")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: Path = Path(".")) -> Settings:
        """Settings from a mapping shaped like the config file; relative root directories
        are relative to ``base`` (the file's folder)."""
        roots = data.get("roots", {})
        if isinstance(roots, Mapping):
            resolved = {name: _resolve(path, base) for name, path in roots.items()}
            data = {**data, "roots": resolved}
        return cls(**data)

    def to_mapping(self) -> dict[str, Any]:
        """Every setting as ``from_mapping`` reads it (JSON-safe): how worker processes
        started by uvicorn receive the settings of the command line."""
        return self.model_dump(mode="json")

    @classmethod
    def for_directory(cls, directory: Path, name: str | None = None) -> Settings:
        """Serve one directory as one root named after it (``serve /some/dir``)."""
        path = directory.expanduser().resolve()
        cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", path.name).strip("-.")
        return cls(roots={name or cleaned or "data": path})

    def open_options(self) -> OpenOptions:
        """What adapters are told when a source is opened."""
        return replace(
            self.hdf5.open_options(),
            max_chunk_bytes=self.cache.max_chunk_bytes,
            tiff_axes=tuple((pattern, letters.lower()) for pattern, letters in self.tiff.axes.items()),
        )


def _resolve(path: Any, base: Path) -> Any:
    """A root directory made absolute (anything else is left for validation to refuse)."""
    return (base / Path(path).expanduser()).resolve() if isinstance(path, str | Path) else path


def _check_disjoint(roots: dict[str, Path]) -> None:
    """Refuse roots whose real directories are equal or nested (symlinks resolved): a file
    under both would be served under two URL paths, each with its own [auth] protection."""
    real = {name: os.path.realpath(path) for name, path in roots.items()}
    for (inner, inner_path), (outer, outer_path) in permutations(real.items(), 2):
        if inner_path == outer_path:
            raise ValueError(
                f"roots {inner!r} and {outer!r} are the same directory ({inner_path}): roots must not overlap"
            )
        if inner_path.startswith(outer_path.rstrip(os.sep) + os.sep):
            raise ValueError(
                f"root {inner!r} ({inner_path}) lies inside root {outer!r} ({outer_path}): roots must not "
                "overlap (its files would also be served under the outer root, past [auth] protect)"
            )


def _check_key_outside_roots(key_path: Path | None, roots: dict[str, Path]) -> None:
    """Refuse a signing key file inside a root (symlinks resolved): a file in a root can make
    the gateway read other files (HDF5 external links), and the key forges every token."""
    key = os.path.realpath(key_path) if key_path is not None else None
    for name, path in sorted(roots.items()):
        root = os.path.realpath(path)
        if key is not None and (key == root or key.startswith(root.rstrip(os.sep) + os.sep)):
            raise ValueError(
                f"auth.signing_key_file {key_path} lies inside root {name!r} ({root}): "
                "keep the signing key outside every served folder"
            )


def _root_of(url_path: str) -> str:
    return url_path.strip("/").partition("/")[0]


def _label_problems(labels: tuple[LabelSettings, ...], roots: Mapping[str, Path]) -> list[tuple[str, str]]:
    """``[[labels]]`` entries that can never be served, found without touching the disk:
    a path under no root, an image its own label, two labels of one name on one image
    (which would be two nodes at one place of the tree). What the files hold is checked
    when serving starts (``gateway.store.preflight``)."""
    problems: list[tuple[str, str]] = []
    seen: dict[tuple[str, str], int] = {}
    known = ", ".join(sorted(roots))
    for index, entry in enumerate(labels):
        where = f"labels[{index}]"
        for field in ("image", "source"):
            path = getattr(entry, field)
            if roots and _root_of(path) not in roots:
                problems.append((f"{where}.{field}", f"{path!r} is under no root (roots: {known})"))
        if entry.image.strip("/") == entry.source.strip("/"):
            problems.append((f"{where}.source", "an image cannot be its own label image"))
        name = (entry.image.strip("/"), entry.label_name)
        if name in seen:
            problems.append(
                (
                    f"{where}.name",
                    f"{entry.label_name!r} already names a label of {name[0]!r} (labels[{seen[name]}])",
                )
            )
        seen.setdefault(name, index)
    return problems


def _pattern_problems(settings: Settings) -> list[tuple[str, str]]:
    """``[[rocrate]]`` and ``[[chunks.rules]]`` patterns that no dataset's URL path
    (``<root>/<path>``) can match: a pattern without its root (``cells/*.tif``) would
    otherwise be silently ignored."""
    if not settings.roots:
        return []
    entries = [(f"rocrate[{i}].dataset", e.dataset) for i, e in enumerate(settings.rocrate)]
    entries += [(f"chunks.rules[{i}].pattern", r.pattern) for i, r in enumerate(settings.chunks.rules)]
    known = ", ".join(sorted(settings.roots))
    return [
        (where, f"{pattern!r} matches no dataset: URL paths are <root>/<path> (roots: {known})")
        for where, pattern in entries
        if not any(_may_match_under(pattern, root) for root in settings.roots)
    ]


def _may_match_under(pattern: str, root: str) -> bool:
    """Whether fnmatch ``pattern`` can match some path ``<root>/...``: its literal head
    (up to the first wildcard) must agree with ``root/``."""
    head = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    prefix = root + "/"
    if head == pattern:  # no wildcard: the pattern is one path
        return pattern.startswith(prefix)
    return prefix.startswith(head) or head.startswith(prefix)
