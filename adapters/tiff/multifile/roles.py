"""Which file of a set is its master, and the rules every name from the XML passes.

A ``FileName`` is untrusted: it must be a plain name relative to the folder of the file
that names it (``name_problem``), resolve inside the allowed folders (``FileAccess``:
symlinks followed) and be a regular file (``resolve_member``) — a FIFO is never opened.
``find_set`` tells a TIFF that is a set's master from a member (``PartOfSetError``) and
from a single file.
"""

from __future__ import annotations

import os
import re
import stat as statmode
from pathlib import Path

import tifffile

from adapters.base import PartOfSourceError, UnsupportedSourceError
from adapters.io.files import FileAccess, OutsideRootsError
from adapters.tiff.multifile.references import FileRef, SetDocument, read_set_document

COMPANION_SUFFIX = ".companion.ome"
#: A companion file larger than this is refused (its XML is parsed whole).
MAX_COMPANION_BYTES = 64 * 1024**2
#: Bytes of a file sniffed for an OME root element (``can_open`` of a companion).
SNIFF_BYTES = 4096

_OME_ROOT = re.compile(rb"<(?:[\w.-]+:)?OME[\s>/]")


class PartOfSetError(PartOfSourceError):
    """The file is a member of a multi-file set whose master is another file: the set is
    served there, not here."""

    def __init__(self, path: Path, master: Path) -> None:
        shown = os.path.relpath(master, path.parent)
        super().__init__(
            f"{path.name} is part of the multi-file OME-TIFF set {shown}; open that instead", master
        )


def is_companion_name(name: str) -> bool:
    return name.lower().endswith(COMPANION_SUFFIX)


def sniff_companion(path: Path) -> bool:
    """Whether ``path`` starts like an OME-XML document (cheap; never raises)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return False
    return _OME_ROOT.search(head) is not None


def read_companion(path: Path) -> str:
    """The text of a companion file (bounded)."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_COMPANION_BYTES + 1)
    if len(data) > MAX_COMPANION_BYTES:
        raise UnsupportedSourceError(f"{path.name}: more than {MAX_COMPANION_BYTES} bytes of OME-XML")
    return data.decode("utf-8", errors="replace")


def name_problem(name: str | None) -> str | None:
    """Why a ``FileName`` from the XML is refused before any look at the disk, or None.
    Only plain names relative to the naming file's folder are followed."""
    if not name:
        return "a UUID element without a FileName"
    shown = name if len(name) <= 200 else name[:200] + "…"
    if "\x00" in name or "\\" in name:
        return f"{shown!r} is not a file name"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return f"{shown!r} is an absolute path; only names relative to the set's folder are followed"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return f"{shown!r} leaves the set's folder or is not a plain relative name"
    return None


def resolve_member(name: str | None, referrer: Path, access: FileAccess) -> Path:
    """The real path of the regular file a ``FileName`` names beside ``referrer``.

    Raises UnsupportedSourceError (OutsideRootsError for a file outside the allowed
    folders) saying why it cannot be a member."""
    problem = name_problem(name)
    if problem is not None:
        raise OutsideRootsError(problem)
    assert name is not None
    real = access.resolve(name, referrer=referrer)
    try:
        mode = os.stat(real).st_mode
    except OSError as exc:
        raise UnsupportedSourceError(f"{name!r}: {exc.strerror or exc}") from exc
    if not statmode.S_ISREG(mode):
        raise UnsupportedSourceError(f"{name!r} is not a regular file")
    return real


def _document_of(path: Path) -> SetDocument | None:
    """The references of the OME-XML a TIFF or companion file holds (None: none)."""
    try:
        if is_companion_name(path.name):
            return read_set_document(read_companion(path))
        with tifffile.TiffFile(path, _multifile=False) as tif:
            xml = tif.pages.first.description if tif.is_ome else None
    except Exception:  # unreadable or not a TIFF: not a master of anything
        return None
    return read_set_document(xml) if xml else None


def _names_file(
    document: SetDocument, named_by: Path, path: Path, uuid: str | None, access: FileAccess
) -> bool:
    """Whether ``document`` (the XML of ``named_by``) maps planes to the file ``path``."""
    return any(
        (uuid is not None and ref.uuid == uuid) or _resolved(ref, named_by, access) == path
        for ref in document.named_files()
    )


def find_set(path: Path, document: SetDocument | None, access: FileAccess) -> SetDocument | None:
    """``document`` (the OME-XML of the TIFF ``path``) when ``path`` is the master of a
    multi-file set; None when it is a single file, or a member whose master is not there
    (then it is served alone). Raises PartOfSetError when it is a member of a set whose
    master is another file that maps this file's planes (see the module docstring)."""
    if document is None:
        return None
    real = Path(os.path.realpath(path))
    if document.binary_only is not None:
        master = _other_master(document.binary_only, real, access)
        if master is not None:
            found = _document_of(master)
            if found is not None and _names_file(found, master, real, document.uuid, access):
                raise PartOfSetError(path, master)
        return None
    if not _names_other_files(document, real, access):
        return None
    if _begins_with_itself(document, real, access):
        return document
    first = document.first_file()
    master = _other_master(first, real, access) if first is not None else None
    if master is not None and not is_companion_name(master.name):
        found = _document_of(master)
        # the set's first file holds the full metadata too (not a BinaryOnly pointer),
        # begins the set with its own planes and maps this file's: it is the master
        if (
            found is not None
            and found.binary_only is None
            and _begins_with_itself(found, master, access)
            and _names_file(found, master, real, document.uuid, access)
        ):
            raise PartOfSetError(path, master)
    return document


def _names_other_files(document: SetDocument, real: Path, access: FileAccess) -> bool:
    """Whether ``document``, the OME-XML of the file ``real``, maps planes to other files.
    A name that resolves to no file, when it is the only name the document uses, is this
    file renamed (as Bio-Formats reads it), not a set with a missing member."""
    refs = [ref for ref in document.named_files() if not document.is_own(ref)]
    resolved = [_resolved(ref, real, access) for ref in refs]
    if any(path is not None and path != real for path in resolved):
        return True
    return None in resolved and len({ref.name for ref in refs}) > 1


def _resolved(ref: FileRef, referrer: Path, access: FileAccess) -> Path | None:
    try:
        return resolve_member(ref.name, referrer, access)
    except UnsupportedSourceError:
        return None


def _begins_with_itself(document: SetDocument, real: Path, access: FileAccess) -> bool:
    """Whether the first plane ``document`` maps lies in its own file ``real``."""
    first = document.first_file()
    return first is None or document.is_own(first) or _resolved(first, real, access) == real


def _other_master(ref: FileRef, real: Path, access: FileAccess) -> Path | None:
    """The existing file (not ``real`` itself) ``ref`` names beside ``real``, or None."""
    target = _resolved(ref, real, access)
    return None if target == real else target
