"""Settings: one frozen value built from a TOML file, the command line and defaults.

Everything the running service needs is here and nowhere else (no globals): ``create_app``
and the CLI take a ``Settings``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from itertools import combinations
from pathlib import Path
from typing import Any

from adapters.base import DEFAULT_MAX_CHUNK_BYTES, DEFAULT_MAX_DATASETS, OpenOptions

CODECS = ("zstd", "blosc", "gzip", "none")
ACCESS_LOG_FORMATS = ("text", "json", "off")
#: Valid compression levels per codec (zstd's negative levels are its fast modes).
CODEC_LEVELS = {
    "zstd": range(-7, 23),
    "blosc": range(0, 10),
    "gzip": range(0, 10),
    "none": range(-1000, 1000),
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)


class SettingsError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


def parse_size(value: int | str) -> int:
    """Bytes from ``123``, ``"64 MiB"``, ``"2GB"`` (binary prefixes with ``i``)."""
    if isinstance(value, bool):
        raise SettingsError(f"not a size: {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise SettingsError(f"not a size: {value!r}")
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    prefix = unit[:1] if unit[:1] in "kmgt" and unit else ""
    base = 1024 if "i" in unit else 1000
    multiplier = base ** ("kmgt".index(prefix) + 1) if prefix else 1
    return int(number * multiplier)


@dataclass(frozen=True, slots=True)
class ChunkSettings:
    """How served chunks are shaped and encoded.

    ``codec`` default ``zstd`` at level 1: chunks are encoded while a viewer waits, and it
    encodes 4-7x faster than gzip -1 (~500 MB/s per core) for ~20% larger uint16 chunks;
    every client we target (zarr-python, tensorstore, Neuroglancer, zarrita.js/Viv)
    decodes it. Measured by bench/bench_codecs.py.
    """

    codec: str = "zstd"
    level: int = 1
    yx: int = 512  # target edge of square y/x chunks (aligned to source tiles when they fit)
    z: int = 1  # chunk depth along z (1: one source plane per chunk, fastest first pixels)
    min_yx: int = 128
    max_yx: int = 2048
    omit_empty: bool = True  # all-fill chunks answer 404, as zarr's write_empty_chunks=False
    passthrough: bool = True  # serve source chunks untouched where they already are zarr chunks

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise SettingsError(f"chunks.codec must be one of {CODECS}, not {self.codec!r}")
        if self.level not in CODEC_LEVELS[self.codec]:
            levels = CODEC_LEVELS[self.codec]
            raise SettingsError(f"chunks.level for {self.codec} must be {levels.start}..{levels.stop - 1}")
        for name in ("yx", "z", "min_yx", "max_yx"):
            if getattr(self, name) < 1:
                raise SettingsError(f"chunks.{name} must be positive")
        for name in ("yx", "min_yx", "max_yx"):
            value = getattr(self, name)
            if value & (value - 1):
                raise SettingsError(
                    f"chunks.{name} must be a power of two (served y/x chunks are), not {value}"
                )
        if not self.min_yx <= self.yx <= self.max_yx:
            raise SettingsError("chunks.yx must lie between chunks.min_yx and chunks.max_yx")


#: What a process holds besides its byte-bounded caches: an idle server with the demo data
#: open measured 103 MiB RSS; the margin leaves room for chunks in flight.
RSS_MARGIN_BYTES = 256 * 1024**2


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """Memory bounds. All caches are LRU and bounded in bytes (or count, for files)."""

    chunk_bytes: int = 256 * 1024**2  # encoded chunks, as served
    tile_bytes: int = 512 * 1024**2  # decoded source tiles/strips, shared by chunks
    open_files: int = 64  # opened sources kept (parsed structure + one descriptor each)
    #: ...and the bytes their parsed structure pins together (an estimate each source
    #: reports: tile offsets, HDF5 chunk indexes learnt so far, libhdf5's own state)
    open_file_bytes: int = 256 * 1024**2
    stat_interval_seconds: float = 1.0  # how often a served file is checked for changes
    #: Largest decoded size of one source chunk, tile or strip: a larger one (or a
    #: compressed one whose header declares more: a decompression bomb) is refused with an
    #: error instead of being allocated. 256 MiB admits one-strip planes up to 11k x 11k
    #: uint16 and refuses GiB chunks; at worst one such chunk per read thread is in flight
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES

    def __post_init__(self) -> None:
        if self.chunk_bytes < 0 or self.tile_bytes < 0 or self.open_file_bytes < 0 or self.open_files < 1:
            raise SettingsError("cache sizes must be non-negative and open_files >= 1")
        if self.stat_interval_seconds < 0:
            raise SettingsError("cache.stat_interval_seconds must be >= 0")
        if self.max_chunk_bytes < 1024:
            raise SettingsError("cache.max_chunk_bytes must be at least 1 KiB")

    @property
    def rss_budget_bytes(self) -> int:
        """The memory one process stays within (README, "Memory budget"): the three
        byte-bounded pools plus a fixed margin for the interpreter, libraries, dataset
        trees and chunks in flight of ordinary sizes."""
        return self.chunk_bytes + self.tile_bytes + self.open_file_bytes + RSS_MARGIN_BYTES


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1  # uvicorn worker processes
    threads: int = max(4, 2 * (os.cpu_count() or 2))  # bounded pool for reads and codecs
    # Bounded work (gateway/budget.py): chunks of synthesized pyramid levels (heavy: one may
    # read a whole pyramid below it) run in a pool of their own of heavy_threads (0:
    # threads // 2, at least 1), so cheap chunk reads always keep the `threads` pool; no
    # chunk may take more than request_seconds of work (503 beyond, work done is kept)
    heavy_threads: int = 0
    request_seconds: float = 30.0
    cors_origins: tuple[str, ...] = ("*",)
    listing_limit: int = 10000  # datasets shown on "/" (a walk of huge trees is bounded)
    # Cache-Control of successful responses (errors are always "no-store"): metadata can
    # change with the file, chunks are revalidated by ETag once stale.
    cache_control_metadata: str = "public, max-age=60"
    cache_control_chunks: str = "public, max-age=86400"
    cache_control_pages: str = "no-cache"
    # Deployment (deploy/README.md): the URL path prefix a reverse proxy serves the gateway
    # under ("/zarr"; the proxy strips it), so that pages and listings link correctly
    root_path: str = ""
    instance: str = ""  # when set, every response carries X-Gateway-Instance: <instance>
    access_log: str = "text"  # text | json | off (tokens in signed URLs are always redacted)
    server_timing: bool = True  # Server-Timing header (locate, read, encode durations)
    metrics: bool = True  # Prometheus text format at /metrics
    # Links on pages (gateway/links.py): ``public_url`` (https://zarr.example.org/zarr) is
    # what every generated link starts with; else forwarded headers count only from
    # ``trusted_proxies`` (IPs or networks), else links use the address the client reached
    # — never the client's own Host header
    public_url: str = ""
    trusted_proxies: tuple[str, ...] = ()
    # Slow clients (gateway/serving.py, deploy/README.md): a request must arrive whole
    # within header_timeout_seconds of the server waiting for it; idle keep-alive
    # connections close after keep_alive_seconds; beyond max_connections open connections
    # new ones are closed at once and requests answer 503; request heads over
    # max_header_bytes answer 400
    header_timeout_seconds: float = 10.0
    keep_alive_seconds: float = 5.0
    max_connections: int = 1024
    max_header_bytes: int = 16 * 1024

    @property
    def heavy_pool_threads(self) -> int:
        """Threads of the pool for synthesized-level chunks (``heavy_threads``, or auto)."""
        return self.heavy_threads or max(1, self.threads // 2)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise SettingsError("server.port must be 0..65535")
        _check_links(self.public_url, self.root_path, self.trusted_proxies)
        if self.header_timeout_seconds <= 0 or self.keep_alive_seconds <= 0:
            raise SettingsError("server.header_timeout_seconds and server.keep_alive_seconds must be > 0")
        if self.max_connections < 1 or self.max_header_bytes < 1024:
            raise SettingsError("server.max_connections must be >= 1 and server.max_header_bytes >= 1 KiB")
        if self.workers < 1 or self.threads < 1:
            raise SettingsError("server.workers and server.threads must be >= 1")
        if self.heavy_threads < 0 or not self.request_seconds > 0:
            raise SettingsError("server.heavy_threads must be >= 0 and server.request_seconds > 0")
        if self.root_path and not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", self.root_path):
            raise SettingsError(
                f"server.root_path must look like /zarr (no trailing /), not {self.root_path!r}"
            )
        if self.access_log not in ACCESS_LOG_FORMATS:
            raise SettingsError(f"server.access_log must be one of {ACCESS_LOG_FORMATS}")
        if not re.fullmatch(r"[A-Za-z0-9._:@-]*", self.instance):
            raise SettingsError("server.instance: letters, digits and . _ : @ - only")


#: ``scheme://host[:port]`` of a public URL: a DNS name or an IP (v6 in brackets).
_ORIGIN = re.compile(r"https?://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


def _check_links(public_url: str, root_path: str, trusted_proxies: tuple[str, ...]) -> None:
    """``public_url`` is an absolute http(s) URL without query whose path, if any, is the
    mount prefix (so it must agree with ``root_path``); proxies are IPs, networks or ``*``."""
    if public_url:
        origin = _origin_of(public_url)
        path = public_url[len(origin) :].rstrip("/")
        if not _ORIGIN.fullmatch(origin) or (path and not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", path)):
            raise SettingsError(
                f"server.public_url must look like https://zarr.example.org/zarr, not {public_url!r}"
            )
        if root_path and path != root_path:
            raise SettingsError(
                f"server.public_url's path ({path or '/'}) must equal server.root_path ({root_path})"
            )
    for proxy in trusted_proxies:
        if proxy == "*":
            continue
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise SettingsError(
                f"server.trusted_proxies: {proxy!r} is not an IP address, a network (10.0.0.0/8) or '*'"
            ) from None


def _origin_of(url: str) -> str:
    """``scheme://authority`` of an absolute URL (the part before its path)."""
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.split("/", 1)[0] if sep else url


@dataclass(frozen=True, slots=True)
class ViewerSettings:
    """Base URLs of the viewers the dataset pages link to (institutions host their own)."""

    neuroglancer: str = "https://neuroglancer-demo.appspot.com/"
    vizarr: str = "https://hms-dbmi.github.io/vizarr/"
    validator: str = "https://ome.github.io/ome-ngff-validator/"

    def __post_init__(self) -> None:
        for name in ("neuroglancer", "vizarr", "validator"):
            if not re.match(r"^https?://[^/\s]+", getattr(self, name)):
                raise SettingsError(f"viewers.{name} must be an http(s) URL")


_AXIS_LETTERS = re.compile(r"^(?!.*(.).*\1)[tczyx]+$")


@dataclass(frozen=True, slots=True)
class Hdf5Settings:
    """HDF5 sources.

    ``lock_free`` (default true): chunks are read with positional reads and decoded by
    the gateway's threads in parallel; false sends every HDF5 read through h5py under one
    lock (for comparison and diagnosis: see bench/bench_hdf5.py). ``axes``: a table of
    pattern → axis letters (``"*/raw.h5/volume" = "zyxc"``), matched with fnmatch against
    ``<file path>/<dataset path>`` (or the dataset path alone); the first match names a
    dataset's dimensions, before any attribute in the file. ``max_datasets``: image
    datasets one generic HDF5 file serves at most (opening reads each one's structure and
    builds its metadata: ~4 ms each, on the file's first request).
    """

    lock_free: bool = True
    axes: dict[str, str] = field(default_factory=dict)
    max_datasets: int = DEFAULT_MAX_DATASETS

    def __post_init__(self) -> None:
        if self.max_datasets < 1:
            raise SettingsError("hdf5.max_datasets must be >= 1")
        if not isinstance(self.axes, dict):
            raise SettingsError("hdf5.axes must be a table of pattern = axis letters")
        for pattern, letters in self.axes.items():
            valid = isinstance(letters, str) and _AXIS_LETTERS.match(letters.lower()) is not None
            if not valid or not {"y", "x"} <= set(letters.lower()):
                raise SettingsError(
                    f"hdf5.axes[{pattern!r}] must be distinct letters of tczyx including y and x, not {letters!r}"
                )

    def open_options(self) -> OpenOptions:
        return OpenOptions(
            lock_free=self.lock_free, axes=tuple(self.axes.items()), max_datasets=self.max_datasets
        )


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Access control inside the gateway, for sites without a proxy that authenticates.

    ``protect``: roots that answer only with a token (``"*"``: all of them, and the
    listing). Tokens are HMAC-signed grants of a path prefix until an expiry
    (``ome-zarr-gateway sign``), sent as ``/s/<token>/<path>`` or ``Authorization:
    Bearer <token>``. The key comes from ``signing_key_file`` (preferred; environment
    variables in it are expanded, e.g. ``${CREDENTIALS_DIRECTORY}/signing.key``) or
    ``signing_key``; it is never shown in a repr. The key is read once, at start, and a
    key file inside a root is refused (``Settings``): whoever can save a file in a root
    could otherwise have the gateway read it.
    """

    protect: tuple[str, ...] = ()
    signing_key: str = field(default="", repr=False)
    signing_key_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.protect or self.signing_key or self.signing_key_file)

    @property
    def key_path(self) -> Path | None:
        """The signing key file, environment variables and ``~`` expanded; None if unset."""
        return Path(os.path.expandvars(self.signing_key_file)).expanduser() if self.signing_key_file else None

    def key(self) -> bytes:
        """The signing key; raises SettingsError when none is configured or it is short."""
        path = self.key_path
        if path is not None:
            try:
                key = path.read_bytes().strip()
            except OSError as exc:
                raise SettingsError(f"auth.signing_key_file: cannot read {path}: {exc.strerror}") from exc
        else:
            key = self.signing_key.encode()
        if len(key) < 16:
            raise SettingsError("auth: a signing key of at least 16 bytes is needed (signing_key_file)")
        return key


PYRAMID_METHODS = ("mean", "nearest")
LABEL_METHODS = ("mode", "nearest")


@dataclass(frozen=True, slots=True)
class PyramidSettings:
    """Synthesized pyramid levels (``gateway/pyramid.py``) for images without enough
    native levels: y/x halve (z too while it stays comparable to y/x in physical size)
    until the largest plane fits in one chunk. ``max_levels``: at most this many levels
    in all, native ones included (0: no limit). ``method``: intensity images (``mean``,
    integers rounded half up, or ``nearest``); ``label_method``: label images (``mode``,
    ties to the smallest value, or ``nearest``), which never invent values."""

    enabled: bool = True
    max_levels: int = 0
    method: str = "mean"
    label_method: str = "mode"

    def __post_init__(self) -> None:
        if self.max_levels < 0:
            raise SettingsError("pyramids.max_levels must be >= 0 (0: no limit)")
        if self.method not in PYRAMID_METHODS:
            raise SettingsError(f"pyramids.method must be one of {PYRAMID_METHODS}, not {self.method!r}")
        if self.label_method not in LABEL_METHODS:
            raise SettingsError(
                f"pyramids.label_method must be one of {LABEL_METHODS}, not {self.label_method!r}"
            )


@dataclass(frozen=True, slots=True)
class MetadataSettings:
    """``estimate_windows``: channels without a display range in the file get one from
    the 0.1 and 99.9 percentiles of one plane (middle z, first t) of the coarsest native
    level, read when the file is opened, if that plane holds at most ``window_sample_bytes``
    (else the data type's range)."""

    estimate_windows: bool = True
    window_sample_bytes: int = 16 * 1024**2

    def __post_init__(self) -> None:
        if self.window_sample_bytes < 0:
            raise SettingsError("metadata.window_sample_bytes must be >= 0")


@dataclass(frozen=True, slots=True)
class ZarrV2Settings:
    """A Zarr v2 / OME-Zarr 0.4 view of every dataset at ``/<prefix>/<root>/<file>/``
    (never mixed into the v3 tree). ``prefix`` must not be the name of a root."""

    enabled: bool = True
    prefix: str = "v2"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.prefix):
            raise SettingsError("zarr_v2.prefix must be one URL segment of letters, digits, '-' or '_'")


@dataclass(frozen=True, slots=True)
class LabelSettings:
    """One ``[[labels]]`` entry: the image at URL path ``source`` (``<root>/<file>`` or
    ``<root>/<file>/<image group>``) served as label image ``name`` of the image at
    ``image``, in ``<image>/labels/<name>/``."""

    image: str = ""
    source: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        if not self.image or not self.source:
            raise SettingsError("each [[labels]] entry needs image and source (URL paths)")
        if self.name and (not re.fullmatch(r"[A-Za-z0-9._-]+", self.name) or self.name in (".", "..")):
            raise SettingsError(f"labels name {self.name!r}: use letters, digits, '-', '_' or '.'")

    @property
    def label_name(self) -> str:
        if self.name:
            return self.name
        stem = self.source.rstrip("/").rpartition("/")[2].split(".")[0]
        return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "labels"


@dataclass(frozen=True, slots=True)
class RoCrateSettings:
    """One ``[[rocrate]]`` entry: descriptive metadata served as ``ro-crate-metadata.json``
    at the root of every dataset whose URL path matches ``dataset`` (fnmatch; first
    match wins). ``organism``: an NCBI taxon (``NCBI:txid9606``); ``imaging_method``: an
    FBbi term (``obo:FBbi_00000246``); ``license``: a URL."""

    dataset: str = ""
    name: str = ""
    description: str = ""
    license: str = ""
    organism: str = ""
    imaging_method: str = ""

    def __post_init__(self) -> None:
        if not self.dataset:
            raise SettingsError("each [[rocrate]] entry needs dataset (a URL path or pattern)")


@dataclass(frozen=True, slots=True)
class Settings:
    roots: dict[str, Path] = field(default_factory=dict)
    server: ServerSettings = field(default_factory=ServerSettings)
    chunks: ChunkSettings = field(default_factory=ChunkSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    viewers: ViewerSettings = field(default_factory=ViewerSettings)
    hdf5: Hdf5Settings = field(default_factory=Hdf5Settings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    pyramids: PyramidSettings = field(default_factory=PyramidSettings)
    metadata: MetadataSettings = field(default_factory=MetadataSettings)
    zarr_v2: ZarrV2Settings = field(default_factory=ZarrV2Settings)
    labels: tuple[LabelSettings, ...] = ()
    rocrate: tuple[RoCrateSettings, ...] = ()

    def __post_init__(self) -> None:
        for name in self.roots:
            if not _valid_root_name(name):
                raise SettingsError(
                    f"root name {name!r}: use letters, digits, '-', '_' or '.' (not '.' or '..')"
                )
        if self.zarr_v2.enabled and self.zarr_v2.prefix in self.roots:
            raise SettingsError(
                f"root {self.zarr_v2.prefix!r} collides with the Zarr v2 view's URL prefix: "
                "rename the root or set zarr_v2.prefix"
            )
        reserved = sorted(RESERVED_ROOT_NAMES & set(self.roots))
        if reserved:
            raise SettingsError(
                f"root name {reserved[0]!r} is a URL prefix the gateway reserves "
                f"({', '.join(sorted(RESERVED_ROOT_NAMES))}): rename the root"
            )
        _check_disjoint(self.roots)
        _check_key_outside_roots(self.auth.key_path, self.roots)
        unknown = [name for name in self.auth.protect if name != "*" and name not in self.roots]
        if unknown and self.roots:
            raise SettingsError(f"auth.protect names roots that are not configured: {unknown}")

    def check_roots(self) -> None:
        """Raise if a root is not an existing directory (checked when serving, not when
        parsing, so a config can be validated on another machine)."""
        if not self.roots:
            raise SettingsError("no roots configured: give a directory or a [roots] table")
        for name, path in self.roots.items():
            if not Path(path).is_dir():
                raise SettingsError(f"root {name!r}: {path} is not a directory")

    @classmethod
    def from_toml(cls, path: Path) -> Settings:
        """Load a config file; relative root paths are relative to the file."""
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        return cls.from_mapping(data, base=path.parent)

    @classmethod
    def from_mapping(cls, data: dict[str, Any], base: Path = Path(".")) -> Settings:
        unknown = set(data) - {"roots", *SECTIONS, *ARRAYS}
        if unknown:
            raise SettingsError(f"unknown config sections: {sorted(unknown)}")
        roots_raw = data.get("roots", {})
        if not isinstance(roots_raw, dict):
            raise SettingsError("[roots] must be a table of name = directory")
        roots = {str(k): (base / Path(str(v)).expanduser()).resolve() for k, v in roots_raw.items()}
        sections: dict[str, Any] = {
            name: _section(section, data.get(name, {}), name, sizes)
            for name, (section, sizes) in SECTIONS.items()
        }
        arrays: dict[str, Any] = {
            name: _entries(entry, data.get(name, []), name) for name, entry in ARRAYS.items()
        }
        return cls(roots=roots, **sections, **arrays)

    def to_mapping(self) -> dict[str, Any]:
        """Every setting as ``from_mapping`` reads it (JSON-safe): how worker processes
        started by uvicorn receive the settings of the command line."""

        def table(value: Any) -> dict[str, Any]:
            return {key: getattr(value, key) for key in value.__slots__}

        return {
            "roots": {name: str(path) for name, path in self.roots.items()},
            **{name: table(getattr(self, name)) for name in SECTIONS},
            **{name: [table(entry) for entry in getattr(self, name)] for name in ARRAYS},
        }

    @classmethod
    def for_directory(cls, directory: Path, name: str | None = None) -> Settings:
        """Serve one directory as one root named after it (``serve /some/dir``)."""
        path = directory.expanduser().resolve()
        root_name = name or _root_name_for(path)
        return cls(roots={root_name: path})

    def open_options(self) -> OpenOptions:
        """What adapters are told when a source is opened."""
        return replace(self.hdf5.open_options(), max_chunk_bytes=self.cache.max_chunk_bytes)

    def with_overrides(self, **server: Any) -> Settings:
        """A copy with server options (host, port, workers...) replaced where not None."""
        changes = {k: v for k, v in server.items() if v is not None}
        return replace(self, server=replace(self.server, **changes)) if changes else self


#: First URL segments the gateway answers itself, so no root can be named after them:
#: ``s`` carries signed tokens (gateway/auth.py), the rest are service routes (gateway/app.py)
#: — reserved whether or not auth or metrics are enabled, so enabling them never hides a root.
RESERVED_ROOT_NAMES = frozenset({"s", "health", "ready", "metrics"})


def _check_disjoint(roots: dict[str, Path]) -> None:
    """Refuse roots whose real directories are equal or nested (symlinks resolved).

    A file under both would be served under two URL paths, with the access rules of
    whichever path a client picks: ``pub=/x`` beside ``priv=/x/private`` with only ``priv``
    protected would serve ``/pub/private/...`` to anyone. Refusing at start is simpler to
    reason about than merging protections per file."""
    real = [(os.path.realpath(path), name) for name, path in roots.items()]
    for (first, first_name), (second, second_name) in combinations(real, 2):
        if first == second:
            raise SettingsError(
                f"roots {first_name!r} and {second_name!r} are the same directory ({first}): "
                "roots must not overlap"
            )
        for inner, inner_name, outer, outer_name in (
            (first, first_name, second, second_name),
            (second, second_name, first, first_name),
        ):
            if inner.startswith(outer.rstrip(os.sep) + os.sep):
                raise SettingsError(
                    f"root {inner_name!r} ({inner}) lies inside root {outer_name!r} ({outer}): roots "
                    "must not overlap (its files would also be served under the outer root, past [auth] protect)"
                )


def _check_key_outside_roots(key_path: Path | None, roots: dict[str, Path]) -> None:
    """Refuse a signing key file that lies inside a root (symlinks resolved): a file in a
    root can make the gateway read other files (an HDF5 external link, a BigDataViewer
    path), and a leaked key forges tokens for every protected root."""
    if key_path is None:
        return
    key = os.path.realpath(key_path)
    for name, path in sorted(roots.items()):
        root = os.path.realpath(path)
        if key == root or key.startswith(root.rstrip(os.sep) + os.sep):
            raise SettingsError(
                f"auth.signing_key_file {key_path} lies inside root {name!r} ({root}): "
                "keep the signing key outside every served folder"
            )


def _valid_root_name(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9._-]+", name)) and name not in (".", "..")


def _root_name_for(path: Path) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", path.name).strip("-.")
    return cleaned or "data"


#: ``[section]`` → (its settings class, keys that hold byte sizes such as "512 MiB").
SECTIONS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "server": (ServerSettings, ("max_header_bytes",)),
    "chunks": (ChunkSettings, ()),
    "cache": (CacheSettings, ("chunk_bytes", "tile_bytes", "max_chunk_bytes", "open_file_bytes")),
    "viewers": (ViewerSettings, ()),
    "hdf5": (Hdf5Settings, ()),
    "auth": (AuthSettings, ()),
    "pyramids": (PyramidSettings, ()),
    "metadata": (MetadataSettings, ("window_sample_bytes",)),
    "zarr_v2": (ZarrV2Settings, ()),
}
#: ``[[array]]`` of tables → the settings class of its entries.
ARRAYS: dict[str, Any] = {"labels": LabelSettings, "rocrate": RoCrateSettings}


def _entries(cls: Any, values: Any, name: str) -> tuple[Any, ...]:
    """An array of tables (``[[labels]]``), each checked like a section."""
    if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
        raise SettingsError(f"[[{name}]] must be an array of tables")
    known = {f.name for f in fields(cls)}
    entries = []
    for value in values:
        unknown = set(value) - known
        if unknown:
            raise SettingsError(f"unknown keys in [[{name}]]: {sorted(unknown)}")
        for key, item in value.items():
            if not isinstance(item, str):  # every key of these entries is a string
                raise SettingsError(f"{name}.{key} must be a string")
        entries.append(cls(**value))
    return tuple(entries)


def _section(cls: Any, values: Any, name: str, sizes: tuple[str, ...] = ()) -> Any:
    if not isinstance(values, dict):
        raise SettingsError(f"[{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise SettingsError(f"unknown keys in [{name}]: {sorted(unknown)}")
    converted: dict[str, Any] = {}
    for key, value in values.items():
        if key in sizes:
            value = parse_size(value)
        converted[key] = _typed_like(getattr(cls(), key), value, f"{name}.{key}")
    return cls(**converted)


def _typed_like(default: Any, value: Any, where: str) -> Any:
    """``value`` checked against the type of the setting's default (TOML is typed; a
    float for an integer or a string for a list is a mistake worth reporting)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SettingsError(f"{where} must be true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{where} must be an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"{where} must be a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise SettingsError(f"{where} must be a string")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise SettingsError(f"{where} must be a list of strings")
        return tuple(value)
    return value
