"""deploy/apptainer: the definition file parsed by spython (Singularity Python's recipe
parser: header, sections, the files it copies, the commands it runs); every file it copies
exists in the repository, and the Kubernetes Containerfile performs the same steps."""

from __future__ import annotations

import re

from spython.main.parse.parsers import SingularityParser

from tests.deploy.support import DEPLOY, PROJECT

DEFINITION = DEPLOY / "apptainer" / "ome-zarr-gateway.def"
KNOWN_SECTIONS = {
    "setup",
    "files",
    "environment",
    "post",
    "runscript",
    "startscript",
    "test",
    "labels",
    "help",
}


def recipe():
    return SingularityParser(str(DEFINITION)).recipe["spython-base"]


def test_header_and_sections():
    text = DEFINITION.read_text()
    assert re.search(r"^Bootstrap: docker$", text, re.MULTILINE)
    sections = set(re.findall(r"^%(\w+)", text, re.MULTILINE))
    assert sections <= KNOWN_SECTIONS, sections - KNOWN_SECTIONS
    assert {"files", "post", "runscript", "test"} <= sections


def test_spython_reads_it():
    parsed = recipe()
    assert parsed.fromHeader == "python:3.11-slim-bookworm"
    assert any("pip install" in line for line in parsed.install)
    assert "ome-zarr-gateway" in parsed.cmd
    assert any("ome-zarr-gateway --version" in line for line in parsed.install)  # %test, folded in


def test_copied_files_exist():
    for line in recipe().files:
        source, _destination = line.split()
        assert (PROJECT / source).exists(), source


def test_containerfile_does_the_same():
    containerfile = (DEPLOY / "kubernetes" / "Containerfile").read_text()
    parsed = recipe()
    assert f"FROM {parsed.fromHeader}" in containerfile
    for line in (line for line in parsed.install if "tests.sh" not in line):
        assert line in containerfile.replace("\\\n    && ", "\n").replace("RUN ", ""), line
    for line in parsed.files:
        source = line.split()[0]
        assert source in containerfile, source
