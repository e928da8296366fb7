"""adapters.tiff.ome_xml: a forgiving reader; odd values become warnings, never exceptions."""

from __future__ import annotations

import pytest

from adapters.tiff.ome_xml import OmeXmlError, ome_color_to_hex, parse_ome_xml
from tests.conftest import SHARED_DATA

XML_DIR = SHARED_DATA / "ome_types" / "xml"
XML_FILES = sorted(p.name for p in XML_DIR.glob("*.xml")) if XML_DIR.is_dir() else []


def document(
    pixels_attrs: str, channels: str = "", namespace="http://www.openmicroscopy.org/Schemas/OME/2016-06"
):
    return (
        f'<OME xmlns="{namespace}"><Image ID="Image:0" Name="cells">'
        f'<Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" {pixels_attrs}>{channels}</Pixels>'
        "</Image></OME>"
    )


def test_all_46_sample_documents_are_present(shared_data):
    assert len(list((shared_data / "ome_types" / "xml").glob("*.xml"))) == 46


@pytest.mark.parametrize("name", XML_FILES)
def test_sample_document_parses(shared_data, name):
    parsed = parse_ome_xml((shared_data / "ome_types" / "xml" / name).read_bytes())
    assert all(image.sizes["x"] >= 1 and image.sizes["y"] >= 1 for image in parsed.images)


def test_bad_sample_document_parses_without_crash(shared_data):
    """bad.ome.xml is schema-invalid (a malformed Channel ID), still well-formed XML: the
    reader reads the image like any other, and says why the document is invalid."""
    parsed = parse_ome_xml((shared_data / "ome_types" / "xml" / "bad.ome.xml").read_bytes())
    (image,) = parsed.images
    assert (image.sizes["x"], image.sizes["y"], image.sizes["c"]) == (14799, 12464, 3)


def test_bad_sample_document_channel_is_read(shared_data):
    parsed = parse_ome_xml((shared_data / "ome_types" / "xml" / "bad.ome.xml").read_bytes())
    assert [c.name for c in parsed.images[0].channels] == ["Channel 1"]


def test_not_xml_raises_ome_xml_error():
    with pytest.raises(OmeXmlError):
        parse_ome_xml("<OME><Image>")


def test_reads_sizes_and_order():
    image = parse_ome_xml(document('SizeX="20" SizeY="10" SizeZ="5" SizeC="2" SizeT="3"')).images[0]
    assert (image.sizes, image.dimension_order) == ({"x": 20, "y": 10, "z": 5, "c": 2, "t": 3}, "XYZCT")


def test_reads_physical_sizes_with_units():
    parsed = parse_ome_xml(document('PhysicalSizeX="0.5" PhysicalSizeXUnit="nm" PhysicalSizeY="0.25"'))
    physical = parsed.images[0].physical
    assert (physical["x"].value, physical["x"].unit, physical["y"].unit) == (0.5, "nanometer", "micrometer")


def test_reads_time_increment_defaulting_to_seconds():
    physical = parse_ome_xml(document('TimeIncrement="2.5"')).images[0].physical
    assert (physical["t"].value, physical["t"].unit) == (2.5, "second")


def test_non_numeric_size_is_a_warning():
    parsed = parse_ome_xml(document('PhysicalSizeX="abc"'))
    assert "x" not in parsed.images[0].physical and parsed.warnings


def test_zero_physical_size_is_a_warning():
    parsed = parse_ome_xml(document('PhysicalSizeX="0"'))
    assert "x" not in parsed.images[0].physical and parsed.warnings


def test_unknown_unit_is_a_warning_and_no_unit():
    parsed = parse_ome_xml(document('PhysicalSizeX="1" PhysicalSizeXUnit="pixel"'))
    assert parsed.images[0].physical["x"].unit is None and parsed.warnings


def test_bad_size_attribute_is_a_warning():
    parsed = parse_ome_xml(document('SizeX="many"'))
    assert parsed.images[0].sizes["x"] == 1 and parsed.warnings


def test_bad_channel_colour_is_a_warning():
    parsed = parse_ome_xml(document("", '<Channel ID="Channel:0:0" Color="red"/>'))
    assert parsed.images[0].channels[0].color is None and parsed.warnings


def test_image_without_pixels_is_skipped_with_a_warning():
    parsed = parse_ome_xml(
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0"/></OME>'
    )
    assert parsed.images == [] and parsed.warnings


def test_any_schema_namespace_is_read():
    xml = document('SizeX="4"', namespace="http://www.openmicroscopy.org/Schemas/OME/2008-09")
    assert parse_ome_xml(xml).images[0].sizes["x"] == 4


def test_channel_names_colours_and_samples():
    channels = (
        '<Channel ID="Channel:0:0" Name="DAPI" Color="65535" SamplesPerPixel="1"/>'
        '<Channel ID="Channel:0:1" Color="-16776961" SamplesPerPixel="3"/>'
    )
    parsed = parse_ome_xml(document("", channels)).images[0].channels
    assert [(c.name, c.color, c.samples_per_pixel) for c in parsed] == [
        ("DAPI", "0000FF", 1),
        (None, "FF0000", 3),
    ]


@pytest.mark.parametrize(
    ("value", "hex6"),
    [
        (-1, "FFFFFF"),  # opaque white, as a signed 32-bit int
        (-16776961, "FF0000"),  # 0xFF0000FF
        (16711935, "00FF00"),  # 0x00FF00FF
        (65535, "0000FF"),  # 0x0000FFFF
        (255, "000000"),  # opaque black
        (-65281, "FFFF00"),  # 0xFFFF00FF
        (0, "000000"),
        (0xFFFFFFFF, "FFFFFF"),  # unsigned spelling
    ],
)
def test_ome_color_to_hex(value, hex6):
    assert ome_color_to_hex(value) == hex6


def test_bad_sample_document_is_reported_invalid(shared_data):
    parsed = parse_ome_xml((shared_data / "ome_types" / "xml" / "bad.ome.xml").read_bytes())
    assert any("Channel ID 'InvalidName'" in w and "not valid OME-XML" in w for w in parsed.warnings)
    assert any("SizeC=3" in w for w in parsed.warnings)  # one Channel for three channels


@pytest.mark.parametrize("value", ["Channel:0:1", "Channel:x", "urn:lsid:example.org:Channel:7"])
def test_valid_channel_ids_pass(value):
    parsed = parse_ome_xml(document('SizeC="1"', f'<Channel ID="{value}" SamplesPerPixel="1"/>'))
    assert not parsed.warnings


@pytest.mark.parametrize("value", ["InvalidName", "channel:0", "Channel:", "Image:0"])
def test_invalid_channel_ids_are_warnings(value):
    parsed = parse_ome_xml(document('SizeC="1"', f'<Channel ID="{value}" SamplesPerPixel="1"/>'))
    assert any(repr(value) in w and "not valid OME-XML" in w for w in parsed.warnings)


def test_channel_name_falls_back_to_the_fluorophore():
    parsed = parse_ome_xml(
        document('SizeC="2"', '<Channel ID="Channel:0:0" Fluor="GFP"/><Channel ID="Channel:0:1"/>')
    )
    assert [c.name for c in parsed.images[0].channels] == ["GFP", None]
