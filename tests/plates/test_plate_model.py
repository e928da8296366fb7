"""The plate model (adapters.plates), OME-XML plate parsing and naming, and where the fields go."""

from __future__ import annotations

import pytest

from adapters.plates import Plate, PlateAcquisition, PlateField, PlateWell
from adapters.tiff.ome_xml import parse_ome_xml
from adapters.tiff.plates import MAX_PLATE_SIDE, letter_name, number_name, plates_of
from gateway.levels.placement import image_prefixes, plate_prefixes
from tests.plates.writers import NAMESPACE, PLATE_XML


def _plate(**changes: object) -> Plate:
    values: dict[str, object] = {
        "name": "p",
        "rows": ("A", "B"),
        "columns": ("1", "2", "3"),
        "wells": (PlateWell(1, 2, (PlateField(0, 0), PlateField(1))),),
        "acquisitions": (PlateAcquisition(0),),
    }
    values.update(changes)
    return Plate(**values)  # type: ignore[arg-type]


def _document(plates: str, images: int) -> str:
    elements = "".join(
        f'<Image ID="Image:{i}"><Pixels ID="Pixels:{i}" DimensionOrder="XYCZT" Type="uint8" '
        'SizeX="2" SizeY="2" SizeZ="1" SizeC="1" SizeT="1"><MetadataOnly/></Pixels></Image>'
        for i in range(images)
    )
    return f'<OME xmlns="{NAMESPACE}">{plates}{elements}</OME>'


def _plates(plates: str, images: int = 4) -> tuple[tuple[Plate, ...], list[str]]:
    document = parse_ome_xml(_document(plates, images))
    warnings = list(document.warnings)
    found = plates_of(document, [f"Image:{i}" for i in range(images)], warnings)
    return found, warnings


@pytest.mark.parametrize(
    ("index", "letters"),
    [
        (0, "A"),
        (7, "H"),
        (25, "Z"),
        (26, "AA"),
        (27, "AB"),
        (51, "AZ"),
        (52, "BA"),
        (701, "ZZ"),
        (702, "AAA"),
    ],
)
def test_letter_names_continue_past_z_like_plate_labels(index: int, letters: str) -> None:
    assert letter_name(index) == letters


def test_number_names_count_from_one() -> None:
    assert [number_name(i) for i in (0, 1, 23)] == ["1", "2", "24"]


def test_a_plate_knows_its_paths_and_field_count() -> None:
    plate = _plate()
    assert plate.well_path(plate.wells[0]) == "B/3"
    assert plate.field_paths() == {0: "B/3/0", 1: "B/3/1"}
    assert plate.field_count == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rows": ()}, "at least one row"),
        ({"rows": ("A", "A")}, "not unique"),
        ({"columns": ("1", "1-2", "3")}, "not alphanumeric"),
        ({"columns": ("1", "", "3")}, "not alphanumeric"),
        ({"wells": ()}, "at least one well"),
        ({"wells": (PlateWell(2, 0, (PlateField(0),)),)}, "outside the plate"),
        ({"wells": (PlateWell(0, 0, (PlateField(0),)), PlateWell(0, 0, (PlateField(1),)))}, "two wells"),
        ({"wells": (PlateWell(0, 0, ()),)}, "no field"),
        ({"wells": (PlateWell(0, 0, (PlateField(0), PlateField(0))),)}, "unused image"),
        ({"wells": (PlateWell(0, 0, (PlateField(-1),)),)}, "valid"),
        ({"wells": (PlateWell(0, 0, (PlateField(0, 7),)),)}, "no acquisition 7"),
        ({"acquisitions": (PlateAcquisition(0), PlateAcquisition(0))}, "not unique"),
    ],
)
def test_an_inconsistent_plate_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _plate(**changes)


def test_an_acquisition_id_or_count_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        PlateAcquisition(-1)
    with pytest.raises(ValueError, match="not positive"):
        PlateAcquisition(0, maximum_field_count=0)


def test_plate_elements_of_the_sample_documents_are_read() -> None:
    document = parse_ome_xml((PLATE_XML / "two-screens-two-plates-four-wells.ome.xml").read_bytes())
    assert [p.name for p in document.plates] == [None, "twoName"]
    first = document.plates[0]
    assert [(w.row, w.column, len(w.samples)) for w in first.wells] == [
        (1, 1, 2),
        (1, 2, 2),
        (2, 1, 5),
        (2, 2, 2),
    ]
    assert first.wells[0].samples[1].image == "Image:1"
    assert [len(a.samples) for a in first.acquisitions] == [4, 4]
    assert first.acquisitions[0].start_seconds == 1266929370  # 2010-02-23T12:49:30, no zone: UTC
    assert document.images[11].id == "Image:11"


def test_naming_conventions_and_declared_size_name_rows_and_columns() -> None:
    (plate,), warnings = _plates(
        '<Plate ID="Plate:0" Rows="3" Columns="2" RowNamingConvention="number" ColumnNamingConvention="letter">'
        '<Well ID="Well:0" Row="2" Column="1"><WellSample ID="WellSample:0" Index="0"><ImageRef ID="Image:0"/>'
        "</WellSample></Well></Plate>"
    )
    assert (plate.rows, plate.columns, plate.field_paths()) == (("1", "2", "3"), ("A", "B"), {0: "3/B/0"})
    assert warnings == []


def test_without_conventions_rows_are_letters_columns_numbers_up_to_the_last_well() -> None:
    (plate,), _ = _plates(
        '<Plate ID="Plate:0" Rows="1"><Well ID="Well:0" Row="27" Column="11"><WellSample ID="WellSample:0">'
        '<ImageRef ID="Image:3"/></WellSample></Well></Plate>'
    )
    assert (len(plate.rows), plate.rows[-1], plate.columns[-1]) == (28, "AB", "12")
    assert plate.field_paths() == {3: "AB/12/0"}


def test_acquisitions_are_numbered_in_order_and_fields_follow_their_samples() -> None:
    (plate,), _ = _plates(
        '<Plate ID="Plate:0"><Well ID="Well:0" Row="0" Column="0">'
        '<WellSample ID="WS:a"><ImageRef ID="Image:0"/></WellSample>'
        '<WellSample ID="WS:b"><ImageRef ID="Image:1"/></WellSample>'
        '<WellSample ID="WS:c"><ImageRef ID="Image:2"/></WellSample></Well>'
        '<PlateAcquisition ID="PA:x" Name="first" MaximumFieldCount="2" StartTime="1970-01-01T00:01:00Z">'
        '<Description> run one </Description><WellSampleRef ID="WS:b"/></PlateAcquisition>'
        '<PlateAcquisition ID="PA:y" EndTime="2024-01-01T01:00:00+01:00"><WellSampleRef ID="WS:a"/></PlateAcquisition>'
        "</Plate>"
    )
    assert [f.acquisition for f in plate.wells[0].fields] == [1, 0, None]
    assert plate.acquisitions == (
        PlateAcquisition(0, "first", "run one", 60, None, 2),
        PlateAcquisition(1, None, None, None, 1704067200, None),
    )


@pytest.mark.parametrize(
    ("plate", "warning"),
    [
        (f'<Plate ID="P:0" Rows="{10**9}"><Well ID="W" Row="1" Column="0">{{s}}</Well></Plate>', "beyond"),
        (
            f'<Plate ID="P:0" Columns="{"9" * 5000}"><Well ID="W" Row="1" Column="0">{{s}}</Well></Plate>',
            "not an integer",
        ),
        ('<Plate ID="P:0" Rows="0"><Well ID="W" Row="1" Column="0">{s}</Well></Plate>', "below 1"),
        (
            '<Plate ID="P:0" RowNamingConvention="roman"><Well ID="W" Row="1" Column="0">{s}</Well></Plate>',
            "neither",
        ),
        (
            '<Plate ID="P:0"><Well ID="W" Row="1" Column="0">{s}</Well><PlateAcquisition ID="A" StartTime="yesterday"/></Plate>',
            "not a date",
        ),
        (
            '<Plate ID="P:0"><Well ID="W" Row="1" Column="0">{s}</Well><PlateAcquisition ID="A" EndTime="1969-12-31T23:59:59"/></Plate>',
            "before 1970",
        ),
        (
            '<Plate ID="P:0"><Well ID="W" Row="1" Column="0">{s}</Well><PlateAcquisition ID="A" StartTime="99999-01-01T00:00:00"/></Plate>',
            "not a date",
        ),
    ],
)
def test_odd_plate_values_are_warnings_and_the_plate_is_still_served(plate: str, warning: str) -> None:
    sample = '<WellSample ID="S"><ImageRef ID="Image:0"/></WellSample>'
    (found,), warnings = _plates(plate.replace("{s}", sample))
    assert found.field_paths() == {0: "B/1/0"}
    assert len(found.rows) == 2  # sized by its well, whatever the plate declared
    assert any(warning in w for w in warnings), warnings


@pytest.mark.parametrize(
    ("wells", "warning"),
    [
        ('<Well ID="W" Row="-1" Column="0">{s}</Well>', "below 0"),
        ('<Well ID="W" Row="x" Column="0">{s}</Well>', "not an integer"),
        ('<Well ID="W" Column="0">{s}</Well>', "without a valid Row"),
        (f'<Well ID="W" Row="{MAX_PLATE_SIDE}" Column="0">{{s}}</Well>', "beyond"),
        (f'<Well ID="W" Row="0" Column="{10**12}">{{s}}</Well>', "beyond"),
    ],
)
def test_a_well_at_no_valid_place_is_left_out(wells: str, warning: str) -> None:
    sample = '<WellSample ID="S"><ImageRef ID="Image:0"/></WellSample>'
    found, warnings = _plates(f'<Plate ID="P:0">{wells.replace("{s}", sample)}</Plate>')
    assert found == ()  # its only well is gone: no plate, the image stays loose
    assert any(warning in w for w in warnings), warnings


def test_odd_references_keep_the_first_use_and_say_so() -> None:
    (plate,), warnings = _plates(
        '<Plate ID="P:0">'
        '<Well ID="W:0" Row="0" Column="0"><WellSample ID="S:0"><ImageRef ID="Image:1"/></WellSample>'
        '<WellSample ID="S:1"><ImageRef ID="Image:404"/></WellSample><WellSample ID="S:2"/></Well>'
        '<Well ID="W:1" Row="0" Column="1"><WellSample ID="S:3"><ImageRef ID="Image:1"/></WellSample>'
        '<WellSample ID="S:4"><ImageRef ID="Image:2"/></WellSample></Well>'
        '<Well ID="W:2" Row="0" Column="0"><WellSample ID="S:5"><ImageRef ID="Image:3"/></WellSample></Well>'
        "</Plate>"
    )
    assert plate.field_paths() == {1: "A/1/0", 2: "A/2/0"}
    assert len(warnings) == 3
    assert "'Image:404' is not served" in warnings[0]
    assert "already a field" in warnings[1]
    assert "second well at the same place" in warnings[2]


def test_an_image_on_two_plates_stays_on_the_first() -> None:
    first = '<Well ID="W" Row="0" Column="0"><WellSample ID="S"><ImageRef ID="Image:0"/></WellSample></Well>'
    again = '<Well ID="V" Row="0" Column="0"><WellSample ID="T"><ImageRef ID="Image:0"/></WellSample></Well>'
    other = '<Well ID="U" Row="0" Column="1"><WellSample ID="R"><ImageRef ID="Image:1"/></WellSample></Well>'
    plates, warnings = _plates(f'<Plate ID="P:0">{first}</Plate><Plate ID="P:1">{again}{other}</Plate>')
    assert [p.field_paths() for p in plates] == [{0: "A/1/0"}, {1: "A/2/0"}]
    assert any("already a field" in w for w in warnings)


def test_one_plate_of_every_image_is_the_root_else_plates_are_groups() -> None:
    one = _plate(wells=(PlateWell(0, 0, (PlateField(0), PlateField(1))),), acquisitions=())
    assert plate_prefixes([one], 2) == [""]
    assert image_prefixes([one], 2) == ["A/1/0/", "A/1/1/"]
    # an image on no plate beside it: a bioformats2raw collection, the image at its index
    assert plate_prefixes([one], 3) == ["plate0/"]
    assert image_prefixes([one], 3) == ["plate0/A/1/0/", "plate0/A/1/1/", "2/"]
    other = _plate(wells=(PlateWell(1, 2, (PlateField(2),)),), acquisitions=())
    assert image_prefixes([one, other], 3) == ["plate0/A/1/0/", "plate0/A/1/1/", "plate1/B/3/0/"]
