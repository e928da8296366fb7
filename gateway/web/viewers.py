"""Links that open a served image in a viewer, and copyable client snippets (pure functions).

Each function takes the URL of an OME-Zarr image group (ending in ``/``) and what the
group's ``zarr.json`` says about it; base URLs come from ``[viewers]`` in the settings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict
from urllib.parse import quote

from adapters.units import in_si

#: One Neuroglancer image layer per channel, coloured and windowed like OME's ``omero``.
CHANNEL_SHADER = """#uicontrol invlerp normalized
#uicontrol vec3 color color(default="#ffffff")
void main() {
  emitRGB(color * normalized());
}
"""
#: Beyond this many channels one layer (the first channel) is shown; the rest can be added.
MAX_NEUROGLANCER_CHANNELS = 8


class ChannelInfo(TypedDict):
    label: str
    color: str  # 6 hex digits
    start: float
    end: float


def channels_from_omero(omero: dict[str, Any] | None, count: int) -> list[ChannelInfo]:
    """Label, colour and display window of each channel (defaults where omero says nothing)."""
    listed = (omero or {}).get("channels") or []
    channels: list[ChannelInfo] = []
    for index in range(count):
        entry = listed[index] if index < len(listed) else {}
        window = entry.get("window") or {}
        channels.append(
            {
                "label": str(entry.get("label") or f"Channel {index}"),
                "color": str(entry.get("color") or "FFFFFF"),
                "start": float(window.get("start", 0.0)),
                "end": float(window.get("end", 1.0)),
            }
        )
    return channels


def _layer(source: str, channel: ChannelInfo, position: int | None) -> dict[str, Any]:
    layer: dict[str, Any] = {
        "type": "image",
        "source": source,
        "name": channel["label"],
        "shader": CHANNEL_SHADER,
        "shaderControls": {
            "normalized": {"range": [channel["start"], channel["end"]]},
            "color": "#" + channel["color"].lower(),
        },
        "blend": "additive",
    }
    if position is not None:
        layer["localPosition"] = [position]
    return layer


def neuroglancer_state(
    image_url: str,
    axes: Sequence[Mapping[str, Any]],
    scale: Sequence[float],
    channels: Sequence[ChannelInfo],
) -> dict[str, Any]:
    """A viewer state with the image as ``zarr3://`` layers, one per channel, x across and
    y down in the "xy" panel.

    ``axes`` are the multiscale's OME axes, ``scale`` its finest level's. Neuroglancer turns
    an OME channel axis into a local dimension ``c'``; each layer selects its channel with
    ``localPosition``."""
    axis_names = [str(axis["name"]) for axis in axes]
    source = f"zarr3://{image_url}"
    if "c" in axis_names:
        shown = (
            channels[:MAX_NEUROGLANCER_CHANNELS]
            if len(channels) <= MAX_NEUROGLANCER_CHANNELS
            else channels[:1]
        )
        layers = [_layer(source, channel, index) for index, channel in enumerate(shown)]
    else:
        layers = [_layer(source, channels[0], None)]
    three_d = "z" in axis_names
    # Neuroglancer shows the first global dimensions in the array's order (z, y, x), so
    # its "xy" panel would show z across: name the display dimensions as people expect
    shown_axes = [name for name in ("x", "y", "z") if name in axis_names]
    return {
        "dimensions": coordinate_space(axes, scale),
        "displayDimensions": shown_axes,
        "layers": layers,
        "layout": "4panel" if three_d else "xy",
    }


def coordinate_space(axes: Sequence[Mapping[str, Any]], scale: Sequence[float]) -> dict[str, list[Any]]:
    """Neuroglancer's global dimensions for the image's axes other than channels:
    ``{name: [size in SI, "m" | "s" | ""]}``, as its OME-Zarr source makes them.

    The state must carry them: Neuroglancer resolves ``displayDimensions`` against the
    dimensions it knows when it reads the state, before any layer has loaded, and
    silently falls back to the array's order for names it does not know yet."""
    space: dict[str, list[Any]] = {}
    for axis, size in zip(axes, scale, strict=True):
        if axis.get("type") == "channel":
            continue
        si = in_si(str(axis["unit"])) if axis.get("unit") else None
        space[str(axis["name"])] = [float(size) * si[0], si[1]] if si else [float(size), ""]
    return space


def neuroglancer_url(base: str, state: dict[str, Any]) -> str:
    """``<base>#!<state>``: Neuroglancer reads its state from the URL fragment."""
    fragment = quote(json.dumps(state, separators=(",", ":")), safe="")
    return f"{base}#!{fragment}"


def source_url(base: str, image_url: str) -> str:
    """``<base>?source=<image URL>`` (vizarr and the OME-NGFF validator take this form)."""
    return f"{base}?source={quote(image_url, safe=':/')}"


def zarr_python_snippet(image_url: str) -> str:
    return (
        "import zarr\n"
        f'image = zarr.open_group("{image_url}", mode="r")\n'
        'print(image.attrs["ome"]["multiscales"][0]["axes"])\n'
        'level0 = image["0"][:]  # numpy array of the finest level\n'
    )


def tensorstore_snippet(image_url: str) -> str:
    return (
        "import tensorstore as ts\n"
        f'level0 = ts.open({{"driver": "zarr3", "kvstore": "{image_url}0/"}}).result()\n'
        "print(level0.domain, level0.dtype)\n"
        "pixels = level0[...].read().result()\n"
    )
