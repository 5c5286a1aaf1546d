"""The documents and charts of a report, made from the report's JSON alone (no database)."""

import csv
import io
from typing import Any

import openpyxl
import pypdf
import pytest
from PIL import Image

from app.reports.render import (
    MEDIA_TYPES,
    Chart,
    ReportFormat,
    document_rows,
    figure_rows,
    render,
)
from tests.reports.samples import CONTENT_SHA256, CYRILLIC_NAME, LATIN_NAME, sample_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_every_format_has_a_media_type() -> None:
    assert set(MEDIA_TYPES) == set(ReportFormat)
    assert MEDIA_TYPES[ReportFormat.csv] == "text/csv"
    assert MEDIA_TYPES[ReportFormat.pdf] == "application/pdf"
    assert MEDIA_TYPES[ReportFormat.png] == "image/png"


def test_figure_rows_flatten_figures_breakdowns_lists_series_and_differences() -> None:
    rows = list(figure_rows(sample_report()))

    assert rows[0] == ("held.total", "", 1104)
    for row in [
        ("held.by_status", "sentenced", 973),
        ("at_liberty.prosecuted", "", 213),
        ("period.released.total", "", 66),
        ("period.released.by_mode", "pardoned_and_deported", 52),
        ("period.released.by_mode", "acquitted", 0),
        ("period.sentences.by_term_band", "1_3y", 12),
        ("period.deported.by_destination", "LT", 52),
        ("period.released_foreign_by_citizenship", "DE", 2),
        ("cumulative.deaths_in_custody_since_baseline", "", 9),
        ("claims.unconfirmed.count", "", 2),
        ("claims.unconfirmed.by_status", "died_in_custody", 1),
        ("claims.unconfirmed.items", "1.name", CYRILLIC_NAME),
        ("claims.unconfirmed.items", "2.name", ""),
        ("breakdowns.by_article", "342", 480),
        ("breakdowns.by_age_band", "60_plus", 60),
        ("by_collective_event", "1.case_files", 52),
        ("by_collective_event", "1.destination_country", ""),
        ("series.held_by_month.held", "2025-09-30", 1104),
        ("series.held_by_month.recognised", "2025-04-30", 1070),
        ("series.releases_by_month.by_mode.pardoned", "2025-08", 16),
        ("differences.previous_as_of", "", "2025-08-31"),
        ("differences.entered_custody.count", "", 41),
        ("differences.entered_custody.named", "1.name", LATIN_NAME),
        ("differences.left_custody.named", "1.name", CYRILLIC_NAME),
    ]:
        assert row in rows
    # A month's series rows stay together, in the months' order.
    held = [row for row in rows if row[0] == "series.held_by_month.held"]
    assert [key for _, key, _ in held] == [
        "2025-04-30",
        "2025-05-31",
        "2025-06-30",
        "2025-07-31",
        "2025-08-31",
        "2025-09-30",
    ]
    assert all(isinstance(value, int | str) for _, _, value in rows)


def test_document_rows_say_which_report_and_how_it_counts_before_the_figures() -> None:
    report = sample_report()
    rows = list(document_rows(report))

    assert rows[0] == ("id", "", report["id"])
    assert ("parameters.as_known_at", "", "2025-10-01T07:59:55Z") in rows
    assert ("parameters.period.from", "", "2025-09-01") in rows
    assert ("parameters.held_deprivation_types", "2", "imprisonment") in rows
    assert ("content_sha256", "", CONTENT_SHA256) in rows
    assert rows[-len(list(figure_rows(report))) :] == list(figure_rows(report))


def test_csv_has_a_byte_order_mark_and_round_trips() -> None:
    report = sample_report()
    document = render(report, ReportFormat.csv)

    assert document.startswith(b"\xef\xbb\xbffigure,key,value\r\n")
    read = list(csv.DictReader(io.StringIO(document.decode("utf-8-sig"))))
    assert [(row["figure"], row["key"], row["value"]) for row in read] == [
        (figure, key, str(value)) for figure, key, value in document_rows(report)
    ]
    assert {"figure": "held.total", "key": "", "value": "1104"} in read
    assert {"figure": "claims.unconfirmed.items", "key": "1.name", "value": CYRILLIC_NAME} in read


def test_csv_text_that_looks_like_a_formula_stays_text() -> None:
    report = sample_report()
    report["figures"]["by_collective_event"][0]["title"] = '=HYPERLINK("http://x.invalid")'

    read = csv.reader(io.StringIO(render(report, ReportFormat.csv).decode("utf-8-sig")))

    assert ["by_collective_event", "1.title", '\'=HYPERLINK("http://x.invalid")'] in list(read)


def _workbook(report: dict[str, Any]) -> Any:
    return openpyxl.load_workbook(io.BytesIO(render(report, ReportFormat.xlsx)), read_only=True)


def test_xlsx_has_the_figures_a_sheet_per_breakdown_and_the_lists() -> None:
    report = sample_report()
    workbook = _workbook(report)

    assert workbook.sheetnames == [
        "figures",
        *report["figures"]["breakdowns"],
        "lists",
    ]
    figures = list(workbook["figures"].iter_rows(values_only=True))
    assert figures[0] == ("figure", "key", "value")
    assert [
        (figure, key or "", "" if value is None else value) for figure, key, value in figures[1:]
    ] == list(document_rows(report))
    held_total = next(row for row in figures if row[0] == "held.total")
    assert held_total[2] == report["figures"]["held"]["total"]

    articles = list(workbook["by_article"].iter_rows(values_only=True))
    assert articles == [("key", "count"), ("342", 480), ("361-1", 210), ("130", 160)]

    lists = [cell for row in workbook["lists"].iter_rows(values_only=True) for cell in row]
    assert CYRILLIC_NAME in lists
    assert LATIN_NAME in lists
    assert "Памілаванне і высылка ў Літву" in lists


def test_xlsx_text_that_looks_like_a_formula_stays_text() -> None:
    report = sample_report()
    report["differences"]["died"]["named"] = [{"name": "=1+1"}]
    workbook = openpyxl.load_workbook(io.BytesIO(render(report, ReportFormat.xlsx)))

    cells = [cell for row in workbook["lists"].iter_rows() for cell in row if cell.value == "=1+1"]
    assert cells
    assert all(cell.data_type == "s" for cell in cells)


def test_pdf_text_holds_the_key_figures_names_and_a_footer_on_every_page() -> None:
    report = sample_report()
    document = render(report, ReportFormat.pdf)

    assert document.startswith(b"%PDF-")
    pages = [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(document)).pages]
    assert len(pages) > 1
    text = "\n".join(pages)
    figures = report["figures"]
    assert f"Held on 2025-09-30 {figures['held']['total']:,}" in text
    assert f"Released in the period {figures['period']['released']['total']:,}" in text
    assert "pardoned and deported 52" in text
    assert "Deaths in custody since 2020-01-01 9" in text
    assert "Unconfirmed claims (counted apart) 2" in text
    assert CYRILLIC_NAME in text
    assert LATIN_NAME in text
    for number, page in enumerate(pages, start=1):
        assert f"Content SHA-256 {CONTENT_SHA256}" in page
        assert "As known at 2025-10-01T07:59:55Z" in page
        assert "period 2025-09-01 to 2025-09-30 · jurisdiction BY · baseline 2020-01-01" in page
        assert f"page {number} of {len(pages)}" in page


@pytest.mark.parametrize("chart", list(Chart))
def test_png_charts_are_1200_by_600(chart: Chart) -> None:
    image = render(sample_report(), ReportFormat.png, chart=chart)

    assert image.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(image)) as opened:
        opened.verify()
        assert opened.format == "PNG"
        assert opened.size == (1200, 600)


@pytest.mark.parametrize("chart", list(Chart))
def test_png_charts_of_a_report_with_no_months(chart: Chart) -> None:
    report = sample_report()
    report["figures"]["series"] = {"held_by_month": [], "releases_by_month": []}

    with Image.open(io.BytesIO(render(report, ReportFormat.png, chart=chart))) as opened:
        assert opened.size == (1200, 600)


def test_a_report_with_no_previous_one_and_empty_lists_renders() -> None:
    report = sample_report()
    report["differences"] = {
        "previous_id": None,
        "previous_as_of": None,
        "entered_custody": {"count": 0, "named": []},
        "left_custody": {"count": 0, "named": []},
        "died": {"count": 0, "named": []},
    }
    report["figures"]["by_collective_event"] = []
    report["figures"]["claims"]["unconfirmed"]["items"] = []

    text = "".join(
        page.extract_text()
        for page in pypdf.PdfReader(io.BytesIO(render(report, ReportFormat.pdf))).pages
    )
    assert "first report of its series" in text
    assert ("differences.previous_id", "", "") in list(figure_rows(report))
    assert _workbook(report)["lists"]


@pytest.mark.parametrize("fmt", list(ReportFormat))
def test_the_same_report_renders_to_the_same_bytes(fmt: ReportFormat) -> None:
    assert render(sample_report(), fmt) == render(sample_report(), fmt)


def test_a_report_of_all_jurisdictions_with_a_movement_left_out_renders() -> None:
    report = sample_report()
    report["parameters"]["jurisdiction"] = None
    report["differences"]["died"] = None

    text = "".join(
        page.extract_text()
        for page in pypdf.PdfReader(io.BytesIO(render(report, ReportFormat.pdf))).pages
    )
    assert "jurisdiction all jurisdictions" in text
    assert ("parameters.jurisdiction", "", "") in list(document_rows(report))
    assert ("differences.died", "", "") in list(figure_rows(report))
    for chart in Chart:
        assert render(report, ReportFormat.png, chart=chart).startswith(PNG_SIGNATURE)
