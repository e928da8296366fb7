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
from adapters.registry import default_registry
from gateway import __version__
from gateway.config import Settings, SettingsError, load_settings
from gateway.demo import DEMO_FILES, default_demo_dir, ensure_demo_files, missing_demo_files
from gateway.export import ExportError, ExportFailed, ProgressLine, export_file
from gateway.ngff import summary
from gateway.ngff.layout import DatasetTree, TreeOptions, build_tree
from gateway.ops.accesslog import configure_access_logger
from gateway.ops.allocator import tune_allocator
from gateway.store.census import BackgroundCount
from gateway.store.preflight import check_before_serving
from gateway.web.app import LOG_LEVEL_ENV, MULTIPROC_ENV, SETTINGS_ENV, create_app, settings_to_env
from gateway.web.auth import mint_token, signed_path
from gateway.web.listen import ListenError, base_url, bind, reachable_urls
from gateway.web.serving import uvicorn_config

logger = logging.getLogger("gateway")

#: Exit codes: settings or usage refused (as argparse's own), and the address to listen
#: on unavailable (sysexits' EX_UNAVAILABLE: another server holds the port...).
EXIT_SETTINGS = 2
EXIT_UNAVAILABLE = 69


def _settings_from_paths(
    paths: Sequence[Path],
    root_name: str | None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    config: Path | None = None,
) -> Settings:
    """Settings from a config file (``config``, or the one ``.toml`` of ``paths``) and
    directories (which replace its roots), under ``OME_ZARR_GATEWAY__*`` variables and the
    command line's ``overrides`` (precedence: command line > environment > config file >
    defaults)."""
    if len(paths) == 1 and paths[0].suffix == ".toml":
        if config is not None:
            raise SettingsError(f"two config files: {config} (--config) and {paths[0]}")
        return load_settings(paths[0], overrides=overrides)
    if not paths:
        return load_settings(config, overrides=overrides)
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
    return load_settings(config, roots=roots, overrides=overrides)


def run_server(settings: Settings, log_level: str, announce: Sequence[str] = ()) -> None:
    """Check the settings against the disk, listen, say where, and serve until stopped."""
    check_before_serving(settings)  # roots, signing key, [[labels]]: refused now, not at a request
    tune_allocator()  # before any worker thread or process: chunk-sized buffers reused, not refaulted
    server = settings.server
    configure_access_logger(server.access_log)
    sock = bind(server.host, server.port)  # ours, not uvicorn's: see gateway.web.listen
    port = sock.getsockname()[1]
    urls = reachable_urls(server.host, port)
    base = server.public_url.rstrip("/") or urls[0]  # what links on pages start with
    for line in announce:
        print(line.replace("{base}", base), flush=True)
    for line in _serving_lines(settings.roots, urls, server.public_url.rstrip("/")):
        print(line, flush=True)
    census = BackgroundCount(settings.roots, default_registry(), lambda line: print(line, flush=True))
    census.start()  # never waited for: serving starts now
    try:
        _serve(settings, sock, log_level)
    finally:
        census.stop()


def _serving_lines(roots: Mapping[str, Path], urls: Sequence[str], public_url: str) -> list[str]:
    """``Serving <root> → <folder> at <url>/`` (one root) or the roots below it (several),
    other addresses of the machine, and the public URL when page links use one. Scripts
    take the first URL of the first line."""
    if len(roots) == 1:
        ((name, folder),) = roots.items()
        lines = [f"Serving {name} → {folder} at {urls[0]}/"]
    else:
        lines = [f"Serving {len(roots)} roots at {urls[0]}/"]
        lines += [f"  {name} → {folder}" for name, folder in roots.items()]
    if len(urls) > 1:
        lines.append(f"Also reachable at {', '.join(url + '/' for url in urls[1:])}")
    if public_url:
        lines.append(f"Public URL (page links): {public_url}/")
    return lines


def _serve(settings: Settings, sock: socket.socket, log_level: str) -> None:
    # gateway.web.serving: no access log of uvicorn's (tokens), request deadline, connection cap
    server = settings.server
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
    settings = _settings_from_paths(
        [Path(p) for p in args.paths], args.name, {"server": server}, _config(args)
    )
    run_server(settings, args.log_level)
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    """Print a signed URL (and, on stderr, when it expires)."""
    if args.config_file and args.config:
        raise SettingsError(f"two config files: {args.config} (--config) and {args.config_file}")
    # --key-file replaces the configured key, whichever way it was given
    overrides = {"auth": {"signing_key_file": args.key_file, "signing_key": "" if args.key_file else None}}
    config = args.config_file or args.config
    settings = _settings_from_paths([], None, overrides, Path(config) if config else None)
    expires = int(time.time()) + parse_duration(args.expires)
    prefix = args.path.strip("/")
    token = mint_token(settings.auth.key(), prefix, expires)
    server = settings.server
    base = args.base_url or server.public_url or base_url(server.host, server.port) + server.root_path
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
    if args.config:
        raise SettingsError("demo serves its own sample files with the defaults: it takes no --config")
    folder = Path(args.dir) if args.dir else default_demo_dir()
    missing = missing_demo_files(folder)
    if missing:  # said only when there is something to write (it takes a few seconds)
        print(f"Writing {len(missing)} demo file(s) to {folder} (once)...", flush=True)
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
    """Print what a file is served as: a summary of each image, or that and every
    document (the default) or the documents only (``--json``)."""
    path = Path(args.file)
    settings = _settings_from_paths([], None, config=_config(args))
    problem = _not_a_file(path)
    if problem is not None:
        print(f"error: {path}: {problem}", file=sys.stderr)
        return 1
    try:
        source = adapters.open_source(path, options=settings.open_options())
    except (AdapterError, OSError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 1
    try:
        try:  # as served: windows are estimated from the pixels, which may not decode
            browse = settings.browse.chunk_settings(settings.chunks) if settings.browse.enabled else None
            tree = build_tree(source, settings.chunks, TreeOptions.from_settings(settings, browse=browse))
        except (AdapterError, OSError) as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            return 1
        if not args.json:
            print(f"{path}: {source.format}, {len(source.images)} image(s)")
            for image in summary.summarize(tree.documents):
                lines = summary.describe(image)
                if not args.summary:
                    lines += _level_lines(image, tree)
                print("\n".join("  " + line for line in lines))
            for warning in source.warnings:
                print(f"  warning: {warning}")
        if args.summary:
            return 0
        if not args.json:
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


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` is no file to inspect ("no such file", "is a directory"), or None."""
    try:
        if path.is_dir():
            return "is a directory (inspect one file; serve a folder with `ome-zarr-gateway serve`)"
        path.stat()
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _level_lines(image: summary.ImageSummary, tree: DatasetTree) -> list[str]:
    """Each level's shape, type, the source's tiles (native levels), the served chunks and
    how their bytes are made (what a chunk costs the server); and where the browsing view
    cuts the level otherwise, its chunks there."""
    prefix = f"{image.path}/" if image.path else ""
    lines = []
    for level in image.levels:
        node = tree.arrays[f"{prefix}{level.path}"]
        origin = "synthesized" if level.synthesized else f"source tiles {node.level.tile_shape}"
        lines.append(
            f"  level {level.path}: shape {level.shape} {image.dtype}, {origin}, chunks {level.chunks}: "
            f"{node.making}"
        )
        browsing = tree.browse.arrays[node.path] if tree.browse is not None else node
        if browsing is not node:
            lines.append(
                f"    in the browsing view (/browse/): chunks {browsing.chunk_shape}: {browsing.making}"
            )
    return lines


def cmd_export(args: argparse.Namespace) -> int:
    """Write a file's dataset, as served, to a folder (a static OME-Zarr 0.5)."""
    overrides = {"server": {"threads": args.threads}}
    settings = _settings_from_paths([], None, overrides, _config(args))
    tune_allocator()
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


def _config(args: argparse.Namespace) -> Path | None:
    return Path(args.config) if args.config else None


LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _add_global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """Options every command takes, before or after its name (``--log-level debug serve``
    and ``serve --log-level debug``): the subcommands' copies default to SUPPRESS, so an
    option given before the name is not reset by the subcommand's parser."""
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default=default, help="logging threshold (default info)"
    )
    parser.add_argument(
        "--config",
        metavar="FILE.toml",
        default=default,
        help="config file (all keys: config.example.toml); serve: directories given replace its roots",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ome-zarr-gateway",
        description="Serve TIFF/OME-TIFF and HDF5 files, in place, as OME-Zarr 0.5 over HTTP.",
        epilog=f"Exit codes: 0 done, 1 a file cannot be read, {EXIT_SETTINGS} bad settings or usage, "
        f"{EXIT_UNAVAILABLE} cannot listen (port in use...), 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_global_options(parser, None)
    common = argparse.ArgumentParser(add_help=False)
    _add_global_options(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="serve directories or a config file")
    serve.add_argument(
        "paths",
        nargs="*",
        help="directories to serve, or one config .toml (none: roots from --config or OME_ZARR_GATEWAY__ROOTS__*)",
    )
    serve.add_argument("--name", help="root name for a single directory (default: its name)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--workers", type=int, help="uvicorn worker processes")
    serve.add_argument("--threads", type=int, help="read/decode threads per process")
    serve.set_defaults(func=cmd_serve)

    sign = sub.add_parser(
        "sign", parents=[common], help="print a signed, expiring URL for a path prefix ([auth])"
    )
    sign.add_argument(
        "config_file",
        metavar="config",
        nargs="?",
        help="config .toml with [auth] (or --config, or OME_ZARR_GATEWAY__AUTH__*)",
    )
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

    demo = sub.add_parser("demo", parents=[common], help="write sample files (once) and serve them")
    demo.add_argument("--dir", help=f"where to write them (default {default_demo_dir()})")
    demo.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    demo.set_defaults(func=cmd_demo)

    inspect = sub.add_parser("inspect", parents=[common], help="print what a file is served as")
    inspect.add_argument("file")
    shown = inspect.add_mutually_exclusive_group()
    shown.add_argument(
        "--summary", action="store_true", help="a few lines per image: no levels' details, no documents"
    )
    shown.add_argument("--json", action="store_true", help="print only the documents")
    inspect.set_defaults(func=cmd_inspect)

    export = sub.add_parser(
        "export",
        parents=[common],
        help="write a file's dataset, byte for byte as served, to a folder (static OME-Zarr 0.5)",
        description="With --config: its chunks, codecs and [[rocrate]] apply, and a source under "
        "one of its roots is exported as served there (declared labels resolve).",
    )
    export.add_argument("source", help="a file the gateway can serve")
    export.add_argument(
        "dest", help="folder to write (new, empty, or an earlier export of the same source: resumed)"
    )
    export.add_argument("--threads", type=int, help="read/encode threads (default: server.threads)")
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.log_level = args.log_level or "info"
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SETTINGS
    except ListenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
