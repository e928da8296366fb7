"""Configuration checked against the disk before serving starts.

Parsing the settings (``gateway.config``) refuses what is wrong on its face, without
touching the disk, so a config can be validated anywhere. What only the disk can tell is
checked here, once, before the server listens: that the roots are directories, that the
signing key can be read, and that every ``[[labels]]`` entry names an image and a label
image that exist and fit. A problem found later (a request) would be a log line nobody
reads; found here it stops the start with the dotted key and the reason.

While serving, the files may still change: the label resolution at request time
(``gateway.levels.labels``) then logs and leaves out what no longer fits.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters.base import AdapterError, Image, NoTileCache, OpenOptions, Source
from adapters.registry import Registry, default_registry
from gateway.config import Settings, SettingsError
from gateway.config.settings import LabelSettings
from gateway.levels.labels import find_image
from gateway.ngff.layout import label_mismatch
from gateway.store.cache import ByteLRU
from gateway.store.catalog import Catalog

Problem = tuple[str, str]  # (dotted key, what is wrong)


def check_before_serving(settings: Settings, registry: Registry | None = None) -> None:
    """Raise one ``SettingsError`` naming every problem the disk shows, or return."""
    problems: list[Problem] = []
    for check in (settings.check_roots, lambda: _check_key(settings)):
        try:
            check()
        except SettingsError as exc:
            problems.extend(exc.problems)
    if not problems and settings.labels:  # labels are looked up under the roots
        problems.extend(label_problems(settings, registry or default_registry()))
    if problems:
        raise SettingsError.of(problems)


def _check_key(settings: Settings) -> None:
    if settings.auth.enabled:
        settings.auth.key()  # read once here: a worker must not fail on it later


def label_problems(settings: Settings, registry: Registry) -> list[Problem]:
    """What keeps each ``[[labels]]`` entry from being served: an image or label source
    that is no dataset under a root, a file that cannot be opened, no image at the named
    group, or a label image that does not fit its image (type, axes, size)."""
    catalog = Catalog(settings, ByteLRU(0), registry, _never_built)
    opened: dict[Path, Source | str] = {}
    options = settings.open_options()
    try:
        problems = []
        for index, entry in enumerate(settings.labels):
            problem = _entry_problem(entry, catalog.resolve_file, registry, options, opened)
            if problem is not None:
                field, what = problem
                problems.append((f"labels[{index}].{field}", what))
        return problems
    finally:
        for source in opened.values():
            if not isinstance(source, str):
                source.close()
        catalog.close()


def _entry_problem(
    entry: LabelSettings,
    resolve: Callable[[str], tuple[str, Path, str] | None],
    registry: Registry,
    options: OpenOptions,
    opened: dict[Path, Source | str],
) -> Problem | None:
    images: list[Image] = []
    for field in ("image", "source"):
        url_path = getattr(entry, field).strip("/")
        found = resolve(url_path)
        if found is None:
            return field, f"{url_path!r} is no dataset file under its root"
        _dataset, path, group = found
        source = opened.get(path)
        if source is None:
            source = opened[path] = _open(registry, path, options)
        if isinstance(source, str):
            return field, f"{url_path!r} cannot be opened: {source}"
        image = find_image(source, group)
        if image is None:
            return field, f"{url_path!r}: the file holds no image at {group!r}"
        images.append(image)
    mismatch = label_mismatch(images[0], images[1])
    if mismatch is not None:
        return "source", f"{entry.source.strip('/')!r} cannot label {entry.image.strip('/')!r}: {mismatch}"
    return None


def _open(registry: Registry, path: Path, options: OpenOptions) -> Source | str:
    """The opened source, or why it cannot be opened."""
    try:
        return registry.open(path, NoTileCache(), options)
    except (AdapterError, OSError) as exc:
        return str(exc)


def _never_built(*_: Any) -> Any:
    raise AssertionError("the preflight catalog only resolves paths; it opens no dataset")
