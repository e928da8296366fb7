"""Multi-file OME-TIFF sets: one image whose planes lie in several files.

An OME-XML ``TiffData`` element maps planes to IFDs; with a ``UUID`` child whose
``FileName`` names another file, those IFDs lie in that file. Writers use this in three
ways, all served as one dataset at the set's *master*:

- Bio-Formats companion sets: a ``<name>.companion.ome`` XML file holds the metadata; each
  TIFF holds ``<BinaryOnly MetadataFile=... UUID=...>`` and pixels. The companion is the
  master.
- Micro-Manager: ``<prefix>_MMStack_<pos>.ome.tif`` holds the full OME-XML (and so do its
  ``_1``, ``_2``... splits over 4 GB, an exact copy); other positions' files are
  ``BinaryOnly`` pointers to it. The file holding the set's first plane is the master.
- Bio-Formats multi-file writes: every file holds the full OME-XML; again the file
  holding the first plane is the master.

Every other file of a set is a *member*: opened on its own it is refused with
``PartOfSetError`` (naming the master), so a set is one dataset, not a list of fragments.

The XML is untrusted: anyone who can save a file in a served folder can write one. A
``FileName`` must be a plain relative name (no ``..``, no absolute path, no backslash),
it is resolved beside the file that names it, and the member must lie in the allowed
folders (``FileAccess``: symlinks followed, checked again once open) and be a regular
file. A member that cannot be used — missing, outside, a directory, of another
acquisition (its own OME ``UUID`` differs from the one the set names), stored unlike the
rest — does not fail the set: reading a plane it holds raises ``MissingPlaneError`` (a
5xx for those chunks, never fill values), the other planes are served. At most
``MAX_MEMBER_FILES`` files per set, counted before any file is touched.

tifffile parses each member's IFDs from our own descriptor (``TiffFile(stream)``), never
by a name from the XML (tifffile would follow it anywhere). The pixels are then read with
positional reads like a single file's, one reader per member (``MemberFiles``: at most
``MAX_OPEN_MEMBERS`` descriptors open per set, reopened on demand through the same
containment checks and refused if the file changed meanwhile).

Modules: ``references`` (the XML's plane references; pure), ``roles`` (the rules for
names, which file is the master), ``members`` (member descriptors), ``planes`` (opening a
set: members parsed, planes mapped, one tifffile series per image).
"""

from adapters.tiff.multifile.members import MAX_OPEN_MEMBERS, MemberFiles, MemberReader
from adapters.tiff.multifile.planes import (
    MAX_MEMBER_FILES,
    FileSet,
    MissingPlaneError,
    SetPlanes,
    open_file_set,
    set_planes,
)
from adapters.tiff.multifile.references import SetDocument, read_set_document
from adapters.tiff.multifile.roles import (
    COMPANION_SUFFIX,
    PartOfSetError,
    find_set,
    is_companion_name,
    name_problem,
    read_companion,
    resolve_member,
    sniff_companion,
)

__all__ = [
    "COMPANION_SUFFIX",
    "MAX_MEMBER_FILES",
    "MAX_OPEN_MEMBERS",
    "FileSet",
    "MemberFiles",
    "MemberReader",
    "MissingPlaneError",
    "PartOfSetError",
    "SetDocument",
    "SetPlanes",
    "find_set",
    "is_companion_name",
    "name_problem",
    "open_file_set",
    "read_companion",
    "read_set_document",
    "resolve_member",
    "set_planes",
    "sniff_companion",
]
