"""What the documentation claims, checked against the repository it describes (issue 12):
tables that render as tables, files it cites that exist, what ``.ci/run`` installs, memory
numbers that fit the limits they are put under, folders created before files go in them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt

from gateway.config import Settings, load_settings, parse_size

PROJECT = Path(__file__).resolve().parent.parent
DOCUMENTS = ["README.md", "deploy/README.md", "bench/README.md"]
GiB = 1024**3
#: What a memory limit keeps above the gateway's worst case (deploy/README.md, "Memory"):
#: fragmentation, libraries' own buffers, thread stacks.
MIN_HEADROOM_BYTES = GiB // 2
MIN_HEADROOM_FRACTION = 0.1


def read(relative: str) -> str:
    return (PROJECT / relative).read_text(encoding="utf-8")


def code_blocks(relative: str, language: str | None = None) -> list[str]:
    """The fenced code blocks of a Markdown document, in order (of one ``language``)."""
    tokens = MarkdownIt("commonmark").parse(read(relative))
    return [t.content for t in tokens if t.type == "fence" and language in (None, t.info.strip())]


# -- Markdown -------------------------------------------------------------------------------------


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_table_row_renders_in_a_table(document: str) -> None:
    """A blank line inside a table ends it: the rows after it render as text with pipes."""
    text = read(document)
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    in_table: set[int] = set()
    in_code: set[int] = set()
    for token in tokens:
        if token.map is None:
            continue
        if token.type == "table_open":
            in_table.update(range(*token.map))
        elif token.type in ("fence", "code_block"):
            in_code.update(range(*token.map))
    strays = [
        f"{document}:{number + 1}: {line[:60]}"
        for number, line in enumerate(text.splitlines())
        if line.lstrip().startswith("|") and number not in in_table | in_code
    ]
    assert not strays, strays


def test_a_blank_line_inside_a_table_is_caught() -> None:
    """The check above, on the break it is there for."""
    tokens = MarkdownIt("commonmark").enable("table").parse("| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n")
    tables = [t.map for t in tokens if t.type == "table_open"]
    assert tables == [[0, 3]]  # the row after the blank line is not in it


# -- files the documentation cites -------------------------------------------------------------

#: A repository path in prose, a comment or a docstring: ``gateway/web/http.py``, ``deploy/…``.
CITED = re.compile(r"(?<![\w./@-])((?:gateway|adapters|tests|bench|deploy|stress|\.ci)/[\w./@-]*[\w@])")


def cited_paths() -> list[tuple[str, str]]:
    sources = ["README.md", "deploy/README.md", "config.example.toml"]
    sources += [
        str(p.relative_to(PROJECT))
        for root in ("gateway", "adapters")
        for p in (PROJECT / root).rglob("*.py")
    ]
    return [(source, match) for source in sources for match in CITED.findall(read(source))]


def test_every_file_the_documentation_cites_exists() -> None:
    missing = sorted({f"{source}: {path}" for source, path in cited_paths() if not (PROJECT / path).exists()})
    assert not missing, missing


def test_nothing_cites_a_design_document_the_repository_does_not_have() -> None:
    """The design notes live beside the checkout (``../shared``), not in it: a reader of
    the code has no such document to open."""
    name = "DESIGN" + ".md"  # not spelled out: this file would cite it
    sources = [p for root in ("gateway", "adapters", "tests") for p in (PROJECT / root).rglob("*.py")]
    citing = [str(p.relative_to(PROJECT)) for p in sources if name in p.read_text(encoding="utf-8")]
    assert (PROJECT / name).exists() or citing == [], citing


# -- .ci/run ----------------------------------------------------------------------------------------


def test_the_readme_names_every_package_ci_installs() -> None:
    packages = re.findall(r"need\+=\((\S+)\)", read(".ci/run"))
    assert "chromium" in packages and len(packages) >= 5
    intro = read("README.md").split("## Serve your own files")[0]
    assert [p for p in packages if f"`{p}`" not in intro] == []


# -- memory ---------------------------------------------------------------------------------------


def worst_case_bytes(settings: Settings) -> int:
    """The RSS budget (README, "Memory budget") plus one largest chunk per read thread."""
    return settings.cache.rss_budget_bytes + settings.server.threads * settings.cache.max_chunk_bytes


def assert_fits(worst: int, limit: int, what: str) -> None:
    headroom = limit - worst
    needed = max(MIN_HEADROOM_BYTES, MIN_HEADROOM_FRACTION * limit)
    assert headroom >= needed, (
        f"{what}: {worst / GiB:.2f} GiB under a {limit / GiB:.2f} GiB limit leaves "
        f"{headroom / GiB:.2f} GiB, less than {needed / GiB:.2f} GiB"
    )


def systemd_memory_max() -> int:
    unit = read("deploy/systemd/ome-zarr-gateway@.service")
    (value,) = re.findall(r"^MemoryMax=(\d+)G$", unit, re.M)
    return int(value) * GiB


def deploy_config() -> dict[str, object]:
    """The config of deploy/README.md's systemd walk-through (the ``toml`` block with [cache])."""
    (block,) = [b for b in code_blocks("deploy/README.md", "toml") if "[cache]" in b]
    return tomllib.loads(block)


def test_the_deploy_config_fits_the_systemd_unit() -> None:
    settings = Settings.from_mapping(deploy_config())
    assert_fits(worst_case_bytes(settings), systemd_memory_max(), "deploy/README.md config under MemoryMax")


def test_the_environment_override_the_deploy_readme_suggests_fits_the_unit(tmp_path: Path) -> None:
    suggested = dict(re.findall(r"`(OME_ZARR_GATEWAY__CACHE__\w+)=(\S+?)`", read("deploy/README.md")))
    assert suggested, "no cache override example found"
    (block,) = [b for b in code_blocks("deploy/README.md", "toml") if "[cache]" in b]
    (tmp_path / "config.toml").write_text(block)
    settings = load_settings(tmp_path / "config.toml", environ=suggested)  # the file, then the variables
    assert_fits(worst_case_bytes(settings), systemd_memory_max(), f"deploy/README.md example {suggested}")


def test_the_larger_caches_the_deploy_readme_suggests_get_a_limit_that_fits() -> None:
    text = " ".join(read("deploy/README.md").split())
    match = re.search(r"e\.g\. (\d+) GiB \+ (\d+) GiB caches.*?`MemoryMax=(\d+)G` at `threads = (\d+)`", text)
    assert match, "the sentence on raising the caches has changed: update this test"
    chunk, tile, limit, threads = (int(g) for g in match.groups())
    settings = Settings.from_mapping(
        {"cache": {"chunk_bytes": chunk * GiB, "tile_bytes": tile * GiB}, "server": {"threads": threads}}
    )
    assert_fits(worst_case_bytes(settings), limit * GiB, match.group(0))


def test_the_kubernetes_config_fits_its_memory_limit() -> None:
    documents = list(yaml.safe_load_all(read("deploy/kubernetes/ome-zarr-gateway.yaml")))
    config_map = next(d for d in documents if d["kind"] == "ConfigMap")
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    settings = Settings.from_mapping(tomllib.loads(config_map["data"]["config.toml"]))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    limit = parse_size(container["resources"]["limits"]["memory"].replace("Gi", " GiB"))
    assert_fits(worst_case_bytes(settings), limit, "kubernetes ConfigMap under limits.memory")


# -- deploy steps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("document", ["README.md", "deploy/README.md"])
def test_the_config_folder_is_created_before_anything_is_put_in_it(document: str) -> None:
    """Shell steps that write or edit a file in /etc/ome-zarr-gateway come after a step
    that creates the folder: the package installs nothing there."""
    created = False
    for block in code_blocks(document, "bash"):
        for line in block.splitlines():
            if re.search(r"mkdir -p /etc/ome-zarr-gateway(\s|$|&)", line):
                created = True
            writes = re.search(r"(>|\$EDITOR|cp .*)\s*/etc/ome-zarr-gateway/\S+", line)
            assert created or not writes, f"{document}: {line.strip()}"
