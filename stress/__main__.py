"""``python -m stress [--short | --full | --profile ci] [--only fuzz,soak,...]``.

Prints each section's figures as a table and writes them all as JSON to the work folder;
exits 1 when any section failed."""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from stress import abuse, corpus_run, faults, fuzz, pool, soak
from stress.profiles import PROFILES, Profile
from stress.report import SectionResult, render

SECTIONS: dict[str, Callable[[Path, Profile], SectionResult]] = {
    "fuzz": fuzz.run,
    "soak": soak.run,
    "pool": pool.run,
    "faults": faults.run,
    "corpus": corpus_run.run,
    "abuse": abuse.run,
}


def run_sections(names: list[str], profile: Profile, workdir: Path) -> list[SectionResult]:
    """Run the named sections one after the other, each in its own sub-folder."""
    raise_fd_limit()
    results = []
    for name in names:
        folder = workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            result = SECTIONS[name](folder, profile)
        except Exception as exc:  # a broken section is a failed section, and the others still run
            result = SectionResult(name)
            result.fail(f"section crashed: {type(exc).__name__}: {exc}")
        result.seconds = time.monotonic() - started
        print(render([result]), flush=True)
        results.append(result)
    return results


def raise_fd_limit() -> None:
    """Half-sent requests need a descriptor each on this side too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stress", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--short", dest="profile", action="store_const", const="short")
    group.add_argument("--full", dest="profile", action="store_const", const="full")
    group.add_argument("--profile", choices=sorted(PROFILES))
    parser.add_argument("--only", help=f"comma-separated sections of {','.join(SECTIONS)}")
    parser.add_argument("--workdir", help="where files, configs and server logs go (default: a new tmp dir)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder (default: only results.json)"
    )
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile or "short"]
    names = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections: {unknown}")
    workdir = (
        Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ome-zarr-gateway-stress-"))
    )
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"profile {profile.name}; work folder {workdir}", flush=True)
    results = run_sections(names, profile, workdir / "run")
    report = workdir / "results.json"
    report.write_text(
        json.dumps({"profile": profile.name, "sections": [r.to_json() for r in results]}, indent=1)
    )
    if not args.keep:
        shutil.rmtree(workdir / "run", ignore_errors=True)
    failed = [r.name for r in results if not r.passed]
    print(f"\nresults: {report}\n{'FAILED: ' + ', '.join(failed) if failed else 'all sections passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
