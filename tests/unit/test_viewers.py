"""gateway.web.viewers: Neuroglancer states, viewer links and snippets."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest

from gateway.web.viewers import (
    MAX_NEUROGLANCER_CHANNELS,
    channels_from_omero,
    neuroglancer_state,
    neuroglancer_url,
    source_url,
    tensorstore_snippet,
    zarr_python_snippet,
)

URL = "http://host:8000/lab/a b.ome.tif/"
OMERO = {
    "channels": [
        {"label": "DAPI", "color": "0000FF", "window": {"start": 10, "end": 500}},
        {"label": "GFP", "color": "00FF00", "window": {"start": 0, "end": 4095}},
    ]
}


def state_of(names: list[str], channels):
    """The state of an image with OME axes ``names`` (no units, scale 1)."""
    kinds = {"c": "channel", "t": "time"}
    axes = [{"name": name, "type": kinds.get(name, "space")} for name in names]
    return neuroglancer_state(URL, axes, [1.0] * len(names), channels)


def test_channels_from_omero():
    channels = channels_from_omero(OMERO, 2)
    assert channels[0] == {"label": "DAPI", "color": "0000FF", "start": 10.0, "end": 500.0}


def test_channels_without_omero_get_defaults():
    assert channels_from_omero(None, 2)[1] == {
        "label": "Channel 1",
        "color": "FFFFFF",
        "start": 0.0,
        "end": 1.0,
    }


def test_state_has_one_zarr3_layer_per_channel():
    state = state_of(["c", "y", "x"], channels_from_omero(OMERO, 2))
    assert [layer["source"] for layer in state["layers"]] == [f"zarr3://{URL}"] * 2
    assert [layer["localPosition"] for layer in state["layers"]] == [[0], [1]]


def test_state_layers_carry_colour_and_window():
    layer = state_of(["c", "y", "x"], channels_from_omero(OMERO, 2))["layers"][0]
    assert layer["shaderControls"] == {"normalized": {"range": [10.0, 500.0]}, "color": "#0000ff"}
    assert "#uicontrol invlerp normalized" in layer["shader"]


def test_state_without_channel_axis_has_one_layer_without_position():
    (layer,) = state_of(["y", "x"], channels_from_omero(None, 1))["layers"]
    assert "localPosition" not in layer


def test_state_of_many_channels_shows_the_first():
    channels = channels_from_omero(None, MAX_NEUROGLANCER_CHANNELS + 1)
    assert len(state_of(["c", "y", "x"], channels)["layers"]) == 1


def test_state_layout_is_2d_or_4panel():
    one = channels_from_omero(None, 1)
    assert state_of(["y", "x"], one)["layout"] == "xy"
    assert state_of(["z", "y", "x"], one)["layout"] == "4panel"


def test_state_shows_x_across_and_y_down():
    # without displayDimensions Neuroglancer's "xy" panel shows the array's first two
    # dimensions: z across and y down for a (z, y, x) volume
    one = channels_from_omero(None, 1)
    assert state_of(["z", "y", "x"], one)["displayDimensions"] == ["x", "y", "z"]
    assert state_of(["t", "c", "z", "y", "x"], one)["displayDimensions"] == ["x", "y", "z"]
    assert state_of(["c", "y", "x"], one)["displayDimensions"] == ["x", "y"]


def test_state_names_the_global_dimensions_in_si_units():
    # Neuroglancer resolves displayDimensions against the dimensions known when it reads
    # the state: without them it falls back to (z, y, x) and the "xy" panel shows z across
    axes = [
        {"name": "t", "type": "time", "unit": "millisecond"},
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "nanometer"},
        {"name": "x", "type": "space"},
    ]
    state = neuroglancer_state(URL, axes, [2.0, 1.0, 3.0, 250.0, 0.5], channels_from_omero(None, 1))
    assert state["dimensions"] == {
        "t": [pytest.approx(2e-3), "s"],
        "z": [pytest.approx(3e-6), "m"],
        "y": [pytest.approx(2.5e-7), "m"],
        "x": [0.5, ""],
    }
    assert set(state["displayDimensions"]) <= set(state["dimensions"])


def test_neuroglancer_url_round_trips_the_state():
    state = {"layers": [{"source": f"zarr3://{URL}"}]}
    link = neuroglancer_url("https://ng.example/", state)
    assert link.startswith("https://ng.example/#!")
    assert json.loads(unquote(link.split("#!", 1)[1])) == state


def test_source_url_quotes_the_image_url():
    assert (
        source_url("https://v.example/", URL)
        == "https://v.example/?source=http://host:8000/lab/a%20b.ome.tif/"
    )


def test_snippets_name_the_url():
    assert f'zarr.open_group("{URL}"' in zarr_python_snippet(URL)
    assert f'"kvstore": "{URL}0/"' in tensorstore_snippet(URL)
