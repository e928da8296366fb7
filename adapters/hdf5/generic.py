"""Generic HDF5: every numeric dataset of two or more dimensions is an image.

An image sits at its dataset's path (``/<root>/<file.h5>/<group/dset>/``). A group whose
datasets are named ``0, 1, 2…`` or ``s0, s1, s2…`` with decreasing shapes is one
multiscale image at the group's path, those datasets being its levels.

Axes come from the first of these that names every dimension with distinct letters of
``tczyx`` (including ``y`` and ``x``):

1. the gateway's configuration (``OpenOptions.axes``, patterns over ``<file>/<dataset>``);
2. dimension labels (``DIMENSION_LABELS``) or the names of attached dimension scales
   (netCDF-4 dimensions);
3. the attributes ``axes``, ``axis_order``, ``dimension_labels`` (a string such as
   ``"zyx"``, or a list) or ilastik's ``axistags`` (JSON);
4. the default: the last two dimensions are y, x; a third is z, a fourth c, a fifth t.

Dimensions are served in t, c, z, y, x order (a transpose where needed); dimensions of
size 1 other than y and x are dropped. Pixel sizes come from regularly spaced dimension
scales (with their ``units``) or from ``element_size_um`` (ilastik, Fiji).

The walk (``visititems``) reaches objects through hard links only, and stops after
``OpenOptions.max_datasets`` image datasets (a warning says so). An external link to a
dataset is followed through ``H5File.get`` (only into the allowed directories, else a
warning); one to a group is not walked into (a warning says so); soft links are aliases
of objects the walk reaches anyway. Datasets kept in other files (external storage,
virtual datasets) are skipped with a warning (``hdf5_file.storage_refusal``).
"""

from __future__ import annotations

import contextlib
import fnmatch
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import h5py
import numpy as np

from adapters.base import Axis, AxisName, Image, Level, SourceReadError, UnsupportedSourceError
from adapters.hdf5.chunks import open_context_array
from adapters.hdf5.file import Hdf5Context, as_text, attr_numbers, attr_text, storage_refusal
from adapters.hdf5.levels import StackedLevel, squeeze_dims
from adapters.units import space_unit, time_unit

#: Names of dimensions (labels, scale names, attribute entries) → axes; case-insensitive.
AXIS_LABELS: dict[str, AxisName] = {
    "t": "t",
    "time": "t",
    "c": "c",
    "ch": "c",
    "channel": "c",
    "channels": "c",
    "z": "z",
    "y": "y",
    "x": "x",
}
AXES_ATTRIBUTES = ("axes", "axis_order", "dimension_labels")
DEFAULT_AXES = {2: "yx", 3: "zyx", 4: "czyx", 5: "tczyx"}
PYRAMID_PREFIXES = ("", "s")

SPATIAL = ("z", "y", "x")


def generic_images(ctx: Hdf5Context) -> list[Image]:
    with ctx.file.locked() as h5:
        datasets = _image_datasets(ctx, h5)
        groups = _pyramids(datasets)
    used = {name for levels in groups.values() for name in levels}
    candidates = [(path, [datasets[n] for n in names]) for path, names in groups.items()]
    candidates += [(name, [ds]) for name, ds in datasets.items() if name not in used]
    images = []
    for path, levels in sorted(candidates, key=lambda item: item[0]):
        try:
            images.append(_image(ctx, path, levels))
        except (UnsupportedSourceError, SourceReadError, ValueError) as exc:
            ctx.warn(f"{path or '/'} skipped: {exc}")
    return images


def _image_datasets(ctx: Hdf5Context, h5: h5py.File) -> dict[str, h5py.Dataset]:
    found: dict[str, h5py.Dataset] = {}

    def visit(name: str, obj: Any) -> bool | None:
        if len(found) >= ctx.options.max_datasets:
            limit = ctx.options.max_datasets
            ctx.warn(f"only the first {limit:,} image datasets of this file are served (hdf5.max_datasets)")
            return True  # stops the walk
        if not isinstance(obj, h5py.Dataset):
            return None
        refused = storage_refusal(obj)  # before ``ndim``: a VDS's extent may come from its sources
        if refused is not None:
            ctx.warn(f"{name} skipped: {refused}")
            return None
        if obj.ndim < 2:
            return None
        dtype = obj.dtype
        if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
            return None
        if any(segment.startswith(".") or segment == "zarr.json" for segment in name.split("/")):
            ctx.warn(f"{name} skipped: its name cannot be a URL path segment")
            return None
        if 0 in obj.shape:
            return None
        found[name] = obj
        return None

    if h5.visititems(visit):
        return found
    for name in _external_links(h5):
        target = ctx.get(name)
        if isinstance(target, h5py.Group):
            ctx.warn(f"{name}: an external link to a group; its datasets are not listed")
        elif target is not None and visit(name, target):
            break
    return found


def _external_links(h5: h5py.File) -> list[str]:
    """Paths of the external links reachable through hard links, from libhdf5's own walk
    of the link names (h5py's ``visititems_links`` checks every path prefix again for each
    link: quadratic in the depth of the groups)."""
    names: list[str] = []

    def visit(name: bytes, info: Any) -> None:
        if info.type == h5py.h5l.TYPE_EXTERNAL:
            names.append(name.decode("utf-8", "surrogateescape"))

    h5.id.links.visit(visit, info=True)
    return names


def _pyramids(datasets: dict[str, h5py.Dataset]) -> dict[str, list[str]]:
    """Group path → level dataset names, for groups holding a pyramid."""
    by_group: dict[str, dict[str, str]] = {}
    for name in datasets:
        group, _, base = name.rpartition("/")
        by_group.setdefault(group, {})[base] = name
    pyramids: dict[str, list[str]] = {}
    for group, children in by_group.items():
        for prefix in PYRAMID_PREFIXES:
            names: list[str] = []
            while f"{prefix}{len(names)}" in children:
                names.append(children[f"{prefix}{len(names)}"])
            if len(names) >= 2 and _decreasing([datasets[n] for n in names]):
                pyramids[group] = names
                break
    return pyramids


def _decreasing(levels: Sequence[h5py.Dataset]) -> bool:
    for previous, current in itertools.pairwise(levels):
        if current.ndim != previous.ndim or current.dtype != previous.dtype:
            return False
        if any(c > p for c, p in zip(current.shape, previous.shape, strict=True)):
            return False
        if current.shape == previous.shape:
            return False
    return True


# ---------------------------------------------------------------------------------------
# One image


def _image(ctx: Hdf5Context, path: str, datasets: Sequence[h5py.Dataset]) -> Image:
    first = datasets[0]
    with ctx.file.locked():
        letters = infer_axes(ctx, first)
        calibration = _calibration(first, letters)
    names, kept = squeeze_dims(first.shape, letters)
    order = sorted(range(len(names)), key=lambda i: "tczyx".index(names[i]))
    axis_names = [cast(AxisName, names[i]) for i in order]
    dims = [kept[i] for i in order]
    levels: list[Level] = []
    for dataset in datasets:
        array = open_context_array(ctx, dataset)
        levels.append(StackedLevel({(): array}, (), [array.shape[d] for d in dims], dims))
    axes = tuple(Axis(n, calibration.units.get(n)) for n in axis_names)
    scale = tuple(calibration.scale.get(n, 1.0) for n in axis_names)
    translation = tuple(calibration.origin.get(n, 0.0) for n in axis_names)
    return Image(
        name=path or ctx.file.path.name,
        axes=axes,
        levels=tuple(levels),
        scale=scale,
        translation=translation if any(translation) else None,
        path=path,
    )


# ---------------------------------------------------------------------------------------
# Axes


def infer_axes(ctx: Hdf5Context, dataset: h5py.Dataset) -> list[str]:
    """One axis letter per dataset dimension (see module docstring for the order)."""
    ndim = dataset.ndim
    name = dataset.name.lstrip("/")
    full = f"{ctx.file.path}/{name}"
    for pattern, letters in ctx.options.axes:
        if fnmatch.fnmatchcase(full, pattern) or fnmatch.fnmatchcase(name, pattern):
            configured = _letters(list(letters.lower()), ndim)
            if configured is not None:
                return configured
            ctx.warn(f"{name}: configured axes {letters!r} do not fit shape {dataset.shape}; ignored")
            break
    for candidate in (_dimension_labels(dataset), _scale_names(dataset), *_axes_attributes(dataset)):
        letters_found = _letters(candidate, ndim) if candidate else None
        if letters_found is not None:
            return letters_found
    if ndim not in DEFAULT_AXES:
        raise UnsupportedSourceError(f"{ndim} dimensions and no axis names")
    return list(DEFAULT_AXES[ndim])


def _letters(labels: Sequence[str] | None, ndim: int) -> list[str] | None:
    if labels is None or len(labels) != ndim:
        return None
    mapped = [AXIS_LABELS.get(str(label).strip().lower()) for label in labels]
    if any(m is None for m in mapped) or len(set(mapped)) != ndim or not {"y", "x"} <= set(mapped):
        return None
    return [m for m in mapped if m is not None]


def _dimension_labels(dataset: h5py.Dataset) -> list[str] | None:
    try:
        labels = [dataset.dims[i].label for i in range(dataset.ndim)]
    except (OSError, RuntimeError, ValueError, KeyError):
        return None
    return labels if all(labels) else None


def _scale_names(dataset: h5py.Dataset) -> list[str] | None:
    names = []
    for i in range(dataset.ndim):
        scale = _dimension_scale(dataset, i)
        if scale is None:
            return None
        names.append(scale.name.rpartition("/")[2])
    return names


def _dimension_scale(dataset: h5py.Dataset, dim: int) -> h5py.Dataset | None:
    try:
        if "DIMENSION_LIST" not in dataset.attrs or len(dataset.dims[dim]) == 0:
            return None
        scale = dataset.dims[dim][0]
    except (OSError, RuntimeError, ValueError, KeyError, IndexError):
        return None
    return scale if isinstance(scale, h5py.Dataset) else None


def _axes_attributes(dataset: h5py.Dataset) -> list[list[str] | None]:
    found: list[list[str] | None] = []
    attrs = dataset.attrs
    for name in AXES_ATTRIBUTES:
        if name not in attrs:
            continue
        try:
            value = attrs[name]
        except (OSError, TypeError, ValueError):
            continue
        found.append(_label_list(value))
    tags = attr_text(attrs, "axistags")
    if tags:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            found.append([str(axis["key"]) for axis in json.loads(tags)["axes"]])
    return found


def _label_list(value: Any) -> list[str] | None:
    """``"zyx"``, ``"z,y,x"``, ``"z y x"``, ``[b"z", b"y", b"x"]`` → ``["z", "y", "x"]``."""
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "SUO" and value.size > 1:
        items = [as_text(v) if not isinstance(v, str) else v for v in value]
        return None if any(i is None for i in items) else [str(i) for i in items]
    text = as_text(value)
    if text is None:
        return None
    parts = [p for p in re.split(r"[\s,;]+", text.strip()) if p]
    return parts if len(parts) > 1 else list(text.strip())


# ---------------------------------------------------------------------------------------
# Pixel sizes


@dataclass(slots=True)
class _Calibration:
    scale: dict[str, float] = field(default_factory=dict)
    units: dict[str, str | None] = field(default_factory=dict)
    origin: dict[str, float] = field(default_factory=dict)


def _calibration(dataset: h5py.Dataset, letters: Sequence[str]) -> _Calibration:
    result = _Calibration()
    for dim, letter in enumerate(letters):
        if letter == "c":
            continue
        spacing = _regular_scale(dataset, dim)
        if spacing is None:
            continue
        step, origin, unit_text = spacing
        unit = time_unit(unit_text) if letter == "t" else space_unit(unit_text)
        result.scale[letter] = step
        result.origin[letter] = origin
        result.units[letter] = unit
    if not any(letter in result.scale for letter in SPATIAL):
        _element_size(dataset, letters, result)
    return result


def _regular_scale(dataset: h5py.Dataset, dim: int) -> tuple[float, float, str | None] | None:
    """(step, first value, units) of a regularly spaced numeric dimension scale."""
    scale = _dimension_scale(dataset, dim)
    if scale is None or storage_refusal(scale) is not None:
        return None
    if scale.ndim != 1 or scale.shape[0] != dataset.shape[dim] or scale.shape[0] < 2:
        return None
    if scale.dtype.kind not in "iuf" or scale.shape[0] > 1_000_000:
        return None
    values = np.asarray(scale[()], dtype=np.float64)
    steps = np.diff(values)
    step = float(steps.mean())
    if not np.isfinite(step) or step <= 0 or not np.allclose(steps, step, rtol=1e-6, atol=0):
        return None
    unit = attr_text(scale.attrs, "units") or attr_text(scale.attrs, "unit")
    return step, float(values[0]), unit


def _element_size(dataset: h5py.Dataset, letters: Sequence[str], result: _Calibration) -> None:
    """``element_size_um``: one value per dimension, or one per spatial dimension."""
    values = attr_numbers(dataset.attrs, "element_size_um")
    if not values:
        return
    if len(values) == len(letters):
        pairs = list(zip(letters, values, strict=True))
    else:
        spatial = [letter for letter in letters if letter in SPATIAL]
        if len(values) != len(spatial):
            return
        pairs = list(zip(spatial, values, strict=True))
    for letter, value in pairs:
        if letter in SPATIAL and value > 0 and np.isfinite(value):
            result.scale[letter] = float(value)
            result.units[letter] = "micrometer"
