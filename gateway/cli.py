"""``ome-zarr-gateway``: serve, demo, inspect, export."""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

import adapters
from adapters.base import AdapterError
from gateway import __version__
from gateway.config import Settings, SettingsError, load_settings
from gateway.demo import DEMO_FILES, default_demo_dir, ensure_demo_files
from gateway.export import ExportError, ExportFailed, ProgressLine, export_file
from gateway.ngff.layout import TreeOptions, build_tree, choose_chunk_shape
from gateway.ops.accesslog import configure_access_logger
from gateway.web.app import LOG_LEVEL_ENV, MULTIPROC_ENV, SETTINGS_ENV, create_app, settings_to_env
from gateway.web.auth import mint_token, signed_path
from gateway.web.serving import uvicorn_config

logger = logging.getLogger("gateway")


def _settings_from_paths(
    paths: Sequence[Path], root_name: str | None, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> Settings:
    """Settings from a config file or directories, under ``OME_ZARR_GATEWAY__*`` variables
    and the command line's ``overrides`` (precedence: command line > environment > config
    file > defaults)."""
    if len(paths) == 1 and paths[0].suffix == ".toml":
        return load_settings(paths[0], overrides=overrides)
    if not paths:
        return load_settings(overrides=overrides)
    roots: dict[str, Path] = {}
    for path in paths:
        if not path.is_dir():
            raise SettingsError(f"{path} is neither a directory nor a .toml config file")
        single = Settings.for_directory(path, root_name if len(paths) == 1 else None)
        for name, directory in single.roots.items():
            unique, n = name, 2
            while unique in roots:
                unique, n = f"{name}-{n}", n + 1
            roots[unique] = directory
    return load_settings(roots=roots, overrides=overrides)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only for sockets
    # whose protocol says TCP; without it every keep-alive request waits ~40 ms (Nagle
    # against delayed ACKs)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets
    sock.bind((host, port))
    # listen now, so that connections made as soon as the address is printed queue in the
    # kernel instead of being refused while uvicorn starts
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def run_server(settings: Settings, log_level: str, announce: Sequence[str] = ()) -> None:
    settings.check_roots()
    if settings.auth.enabled:
        settings.auth.key()  # fail now, not in every worker
    server = settings.server
    configure_access_logger(server.access_log)
    # We bind the socket ourselves (not uvicorn): port 0 works, and it is a TCP socket with
    # TCP_NODELAY, which uvicorn's own binding would not give (see _bind)
    sock = _bind(server.host, server.port)
    bound = _base_url(server.host, sock.getsockname()[1])
    base = server.public_url.rstrip("/") or bound  # what links on pages start with
    for line in announce:
        print(line.replace("{base}", base), flush=True)
    print(f"Serving {', '.join(f'{n} → {p}' for n, p in settings.roots.items())} at {bound}/", flush=True)
    if base != bound:  # a line of its own: scripts take the first URL of the line above
        print(f"Public URL (page links): {base}/", flush=True)
    # gateway.web.serving: no access log of uvicorn's (tokens), request deadline, connection cap
    if server.workers > 1:
        os.environ[SETTINGS_ENV] = settings_to_env(settings)
        os.environ[LOG_LEVEL_ENV] = log_level
        config = uvicorn_config(
            "gateway.web.app:create_app_from_env", server, log_level, factory=True, workers=server.workers
        )
        with _multiprocess_metrics_dir():
            Multiprocess(config, sockets=[sock]).run()
        return
    uvicorn.Server(uvicorn_config(create_app(settings), server, log_level)).run(sockets=[sock])


@contextmanager
def _multiprocess_metrics_dir() -> Iterator[None]:
    """prometheus_client's multiprocess directory for the workers: they share a port, so a
    scrape reaches one of them, and /metrics sums what every worker wrote there. Set before
    the workers are spawned (prometheus_client reads it when imported). A directory given
    in the environment is emptied first, as prometheus_client requires."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        yield
        return
    with tempfile.TemporaryDirectory(prefix="ome-zarr-gateway-metrics-") as directory:
        os.environ[MULTIPROC_ENV] = directory
        try:
            yield
        finally:
            os.environ.pop(MULTIPROC_ENV, None)


def cmd_serve(args: argparse.Namespace) -> int:
    server = {"host": args.host, "port": args.port, "workers": args.workers, "threads": args.threads}
    settings = _settings_from_paths([Path(p) for p in args.paths], args.name, {"server": server})
    run_server(settings, args.log_level)
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    """Print a signed URL (and, on stderr, when it expires)."""
    overrides = {"auth": {"signing_key_file": args.key_file or None}}
    settings = _settings_from_paths([Path(args.config)] if args.config else [], None, overrides)
    expires = int(time.time()) + parse_duration(args.expires)
    prefix = args.path.strip("/")
    token = mint_token(settings.auth.key(), prefix, expires)
    server = settings.server
    base = args.base_url or server.public_url or _base_url(server.host, server.port) + server.root_path
    suffix = "/" if prefix else ""
    print(f"{base.rstrip('/')}{signed_path(token, prefix)}{suffix}")
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(expires))
    print(f"valid until {when} for {'/' + prefix if prefix else 'everything'}", file=sys.stderr)
    return 0


def parse_duration(text: str) -> int:
    """Seconds from ``3600``, ``90m``, ``12h``, ``7d`` or ``2w``."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text)
    if not match or int(match.group(1)) <= 0:
        raise SettingsError(f"not a duration: {text!r} (e.g. 3600, 90m, 12h, 7d, 2w)")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    return int(match.group(1)) * unit


def cmd_demo(args: argparse.Namespace) -> int:
    folder = Path(args.dir) if args.dir else default_demo_dir()
    print(f"Writing demo files to {folder} (once)...", flush=True)
    ensure_demo_files(folder)
    # the demo's own root and defaults, never the environment's settings
    overrides = {"server": {"host": args.host, "port": args.port}}
    settings = load_settings(environ={}, roots={"demo": folder.resolve()}, overrides=overrides)
    lines = ["", "Demo datasets (paste a URL into Neuroglancer as zarr3://<URL>, or open with zarr-python):"]
    lines += [f"  {{base}}/demo/{name}/" for name in sorted(DEMO_FILES)]  # not the files they use
    lines += ["", "Listing: {base}/", ""]
    run_server(settings, args.log_level, announce=lines)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        source = adapters.open_source(path)
    except (AdapterError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        settings = Settings()
        tree = build_tree(source, settings.chunks, TreeOptions.from_settings(settings))  # as served
        if not args.json:
            print(f"{path}: {source.format}, {len(source.images)} image(s)")
            for index, image in enumerate(source.images):
                axes = "".join(image.axis_names)
                units = ", ".join(
                    f"{a.name}={s:g} {a.unit or ''}".strip()
                    for a, s in zip(image.axes, image.scale, strict=True)
                )
                print(f"  image {index}: {image.name!r} axes {axes}; pixel size {units}")
                for k, level in enumerate(image.levels):
                    chunks = choose_chunk_shape(image.axis_names, level, settings.chunks)
                    print(
                        f"    level {k}: shape {level.shape} {level.dtype}, source tiles {level.tile_shape}, chunks {chunks}"
                    )
                for c, channel in enumerate(image.channels):
                    print(f"    channel {c}: {channel.label} #{channel.color or '------'}")
            for warning in source.warnings:
                print(f"  warning: {warning}")
            print()
        for key in tree.document_keys():
            if key.endswith("zarr.json"):
                print(f"--- {key}")
                print(tree.documents[key].decode())
            else:
                print(f"--- {key} ({len(tree.documents[key])} bytes)")
    finally:
        source.close()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a file's dataset, as served, to a folder (a static OME-Zarr 0.5)."""
    overrides = {"server": {"threads": args.threads}}
    settings = _settings_from_paths([Path(args.config)] if args.config else [], None, overrides)
    dest = Path(args.dest)
    line = ProgressLine(sys.stderr)
    try:
        done = export_file(Path(args.source), dest, settings, progress=line)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AdapterError as exc:  # the source cannot be opened
        print(f"error: {args.source}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the source cannot be read, the folder not created
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ExportFailed as exc:
        line.end()
        print(
            f"error: export stopped at {exc.key!r}: {type(exc.cause).__name__}: {exc.cause}", file=sys.stderr
        )
        print("complete objects are kept; run the same command again to resume", file=sys.stderr)
        return 1
    line.end()
    print(f"exported {args.source} to {dest}: {done.summary()}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ome-zarr-gateway",
        description="Serve TIFF/OME-TIFF files, in place, as OME-Zarr 0.5 over HTTP.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve directories or a config file")
    serve.add_argument(
        "paths",
        nargs="*",
        help="directories to serve, or one config .toml (none: roots from OME_ZARR_GATEWAY__ROOTS__*)",
    )
    serve.add_argument("--name", help="root name for a single directory (default: its name)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--workers", type=int, help="uvicorn worker processes")
    serve.add_argument("--threads", type=int, help="read/decode threads per process")
    serve.set_defaults(func=cmd_serve)

    sign = sub.add_parser("sign", help="print a signed, expiring URL for a path prefix ([auth])")
    sign.add_argument("config", nargs="?", help="config .toml with [auth] (or set OME_ZARR_GATEWAY__AUTH__*)")
    sign.add_argument(
        "path", help="what to grant: a root (lab), a folder or a dataset (lab/2024/a.tif); '' for all"
    )
    sign.add_argument("--expires", default="7d", help="lifetime: 3600, 90m, 12h, 7d, 2w (default 7d)")
    sign.add_argument("--key-file", help="signing key file (overrides the config)")
    sign.add_argument(
        "--base-url",
        help="public URL of the gateway, e.g. https://images.example.org/zarr (default: server.public_url)",
    )
    sign.set_defaults(func=cmd_sign)

    demo = sub.add_parser("demo", help="write sample files (once) and serve them")
    demo.add_argument("--dir", help=f"where to write them (default {default_demo_dir()})")
    demo.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    demo.set_defaults(func=cmd_demo)

    inspect = sub.add_parser("inspect", help="print what a file becomes")
    inspect.add_argument("file")
    inspect.add_argument("--json", action="store_true", help="print only the documents")
    inspect.set_defaults(func=cmd_inspect)

    export = sub.add_parser(
        "export", help="write a file's dataset, byte for byte as served, to a folder (static OME-Zarr 0.5)"
    )
    export.add_argument("source", help="a file the gateway can serve")
    export.add_argument(
        "dest", help="folder to write (new, empty, or an earlier export of the same source: resumed)"
    )
    export.add_argument("--threads", type=int, help="read/encode threads (default: server.threads)")
    export.add_argument(
        "--config",
        help="config .toml: chunks, codecs, [[rocrate]]; a source under a root is exported as served there",
    )
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
