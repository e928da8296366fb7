"""``ome-zarr-gateway``: serve, demo, inspect."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from uvicorn.supervisors import Multiprocess

import adapters
from adapters.base import AdapterError
from gateway import __version__
from gateway.app import SETTINGS_ENV, create_app, settings_to_env
from gateway.demo import DEMO_FILES, default_demo_dir, ensure_demo_files
from gateway.layout import build_tree, choose_chunk_shape
from gateway.settings import Settings, SettingsError

logger = logging.getLogger("gateway")


def _settings_from_paths(paths: Sequence[Path], root_name: str | None) -> Settings:
    if len(paths) == 1 and paths[0].suffix == ".toml":
        return Settings.from_toml(paths[0])
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
    return Settings(roots=roots)


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
    server = settings.server
    # We bind the socket ourselves (not uvicorn): port 0 works, and it is a TCP socket with
    # TCP_NODELAY, which uvicorn's own binding would not give (see _bind)
    sock = _bind(server.host, server.port)
    base = _base_url(server.host, sock.getsockname()[1])
    for line in announce:
        print(line.replace("{base}", base), flush=True)
    print(f"Serving {', '.join(f'{n} → {p}' for n, p in settings.roots.items())} at {base}/", flush=True)
    if server.workers > 1:
        os.environ[SETTINGS_ENV] = settings_to_env(settings)
        config = uvicorn.Config(
            "gateway.app:create_app_from_env",
            factory=True,
            workers=server.workers,
            log_level=log_level,
            timeout_graceful_shutdown=10,
        )
        Multiprocess(config, sockets=[sock]).run()
        return
    config = uvicorn.Config(create_app(settings), log_level=log_level, timeout_graceful_shutdown=10)
    uvicorn.Server(config).run(sockets=[sock])


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings_from_paths([Path(p) for p in args.paths], args.name)
    settings = settings.with_overrides(
        host=args.host, port=args.port, workers=args.workers, threads=args.threads
    )
    run_server(settings, args.log_level)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    folder = Path(args.dir) if args.dir else default_demo_dir()
    print(f"Writing demo files to {folder} (once)...", flush=True)
    ensure_demo_files(folder)
    settings = Settings(roots={"demo": folder.resolve()}).with_overrides(host=args.host, port=args.port)
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
        tree = build_tree(source, settings.chunks)
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
    serve.add_argument("paths", nargs="+", help="directories to serve, or one config .toml")
    serve.add_argument("--name", help="root name for a single directory (default: its name)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--workers", type=int, help="uvicorn worker processes")
    serve.add_argument("--threads", type=int, help="read/decode threads per process")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="write sample files (once) and serve them")
    demo.add_argument("--dir", help=f"where to write them (default {default_demo_dir()})")
    demo.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    demo.set_defaults(func=cmd_demo)

    inspect = sub.add_parser("inspect", help="print what a file becomes")
    inspect.add_argument("file")
    inspect.add_argument("--json", action="store_true", help="print only the documents")
    inspect.set_defaults(func=cmd_inspect)
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
