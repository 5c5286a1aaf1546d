"""A stored report as a document: CSV, XLSX, PDF or a PNG chart (docs/reports.md, "Formats").

The input is the report exactly as `GET /api/v1/reports/{id}` answers it, as a plain dict:
the documents say nothing the JSON does not. Rendering is CPU-bound and synchronous: call it
from a worker thread, not on the event loop.

Every document is made from the report alone, with dates taken from it (never the clock), so
the same report renders to the same bytes.
"""

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import matplotlib
import orjson
import xlsxwriter
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from app.reports.charts import Chart, chart_png, jurisdiction_label

__all__ = [
    "MEDIA_TYPES",
    "Chart",
    "ReportFormat",
    "document_rows",
    "figure_rows",
    "inert_for_spreadsheets",
    "render",
]


class ReportFormat(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"
    pdf = "pdf"
    png = "png"


MEDIA_TYPES: Mapping[ReportFormat, str] = {
    ReportFormat.json: "application/json",
    ReportFormat.csv: "text/csv",
    ReportFormat.xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ReportFormat.pdf: "application/pdf",
    ReportFormat.png: "image/png",
}

Value = int | str
Row = tuple[str, str, Value]


def render(report: Mapping[str, Any], fmt: ReportFormat, *, chart: Chart = Chart.held) -> bytes:
    """The report in `fmt`; `chart` chooses the PNG's chart (the PDF always shows the held)."""
    match fmt:
        case ReportFormat.json:
            return orjson.dumps(report)
        case ReportFormat.csv:
            return render_csv(report)
        case ReportFormat.xlsx:
            return render_xlsx(report)
        case ReportFormat.pdf:
            return render_pdf(report)
        case ReportFormat.png:
            return chart_png(report, chart)


# ---------------------------------------------------------------------------------------
# Rows: the figures flattened to (figure, key, value)


def figure_rows(report: Mapping[str, Any]) -> Iterator[Row]:
    """Every figure of the report as (figure, key, value) rows, then the differences from the
    previous report: ("held.total", "", 1104), ("period.released.by_mode", "pardoned", 52).

    A breakdown (a map whose keys are data: statuses, modes, countries) gives a row per key;
    a list (claims, collective events, people named) a row per field of each entry, keyed
    "1.name", "2.name" …; the monthly series a row per month, keyed by the month.
    """
    for name, value in report["figures"].items():
        if name == "series":
            yield from _series_rows(value)
        else:
            yield from _rows(name, value)
    if report.get("differences") is not None:
        yield from _rows("differences", report["differences"])


def document_rows(report: Mapping[str, Any]) -> Iterator[Row]:
    """The rows of the CSV and of the XLSX `figures` sheet: which report, its parameters and
    hash (so the file says what it counts on its own), then `figure_rows`."""
    for name in ("id", "kind", "generated_at", "generator_version"):
        yield name, "", _cell(report[name])
    yield from _rows("parameters", report["parameters"])
    yield "content_sha256", "", report["content_sha256"]
    yield from figure_rows(report)


def _is_breakdown(path: str) -> bool:
    """A map whose keys are data rather than names of figures: `by_status`, `by_mode`,
    `released_foreign_by_citizenship`, and everything under `breakdowns`."""
    parent, _, name = path.rpartition(".")
    return name.startswith("by_") or "_by_" in name or parent.endswith("breakdowns")


def _rows(path: str, value: Any) -> Iterator[Row]:
    if isinstance(value, Mapping):
        if _is_breakdown(path):
            for key, count in value.items():
                if isinstance(count, Mapping | list):
                    yield from _rows(f"{path}.{key}", count)
                else:
                    yield path, str(key), _cell(count)
        else:
            for name, inner in value.items():
                yield from _rows(f"{path}.{name}", inner)
    elif isinstance(value, list):
        for number, entry in enumerate(value, start=1):
            if isinstance(entry, Mapping):
                for field, inner in entry.items():
                    yield path, f"{number}.{field}", _cell(inner)
            else:
                yield path, str(number), _cell(entry)
    else:
        yield path, "", _cell(value)


def _series_rows(series: Mapping[str, Sequence[Mapping[str, Any]]]) -> Iterator[Row]:
    """("series.held_by_month.held", "2025-09-30", 1104), grouped by figure, months in order."""
    for name, months in series.items():
        by_figure: dict[str, list[Row]] = {}
        for month in months:
            moment_field = next(field for field in month if field.startswith("month"))
            moment = str(month[moment_field])
            for field, value in month.items():
                if field == moment_field:
                    continue
                counts = value if isinstance(value, Mapping) else {"": value}
                for key, count in counts.items():
                    figure = f"series.{name}.{field}" + (f".{key}" if key else "")
                    by_figure.setdefault(figure, []).append((figure, moment, _cell(count)))
        for rows in by_figure.values():
            yield from rows


def _cell(value: Any) -> Value:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value
    return str(value)


def _breakdowns(value: Any, path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The figures' breakdowns, (path, map), in the report's order (series left out)."""
    if isinstance(value, Mapping):
        if path and _is_breakdown(path):
            yield path, value
            return
        for name, inner in value.items():
            if not (path == "" and name == "series"):
                yield from _breakdowns(inner, f"{path}.{name}" if path else name)


def _lists(value: Any, path: str = "") -> Iterator[tuple[str, Sequence[Mapping[str, Any]]]]:
    """The lists of entries (claims, collective events, people named), in the report's order."""
    if isinstance(value, Mapping):
        for name, inner in value.items():
            if not (path == "" and name == "series"):
                yield from _lists(inner, f"{path}.{name}" if path else name)
    elif isinstance(value, list) and all(isinstance(entry, Mapping) for entry in value):
        yield path, value


def _report_lists(report: Mapping[str, Any]) -> Iterator[tuple[str, Sequence[Mapping[str, Any]]]]:
    yield from _lists(report["figures"])
    if report.get("differences") is not None:
        yield from _lists(report["differences"], "differences")


def _columns(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    columns: list[str] = []
    for entry in entries:
        columns.extend(field for field in entry if field not in columns)
    return columns


# ---------------------------------------------------------------------------------------
# CSV

# A text cell that a spreadsheet would take for a formula (OWASP "CSV injection"): names and
# titles are typed by people, and a report is opened by its readers in spreadsheets.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def render_csv(report: Mapping[str, Any]) -> bytes:
    """UTF-8 with a byte-order mark, so that spreadsheets read Cyrillic as such."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(("figure", "key", "value"))
    writer.writerows(
        (figure, key, inert_for_spreadsheets(value)) for figure, key, value in document_rows(report)
    )
    return text.getvalue().encode("utf-8-sig")


def inert_for_spreadsheets(value: Value) -> Value:
    """A text that a spreadsheet would run as a formula, quoted so that it shows as text."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


# ---------------------------------------------------------------------------------------
# XLSX

_SHEET_NAME_LIMIT = 31


def render_xlsx(report: Mapping[str, Any]) -> bytes:
    """Sheets: `figures` (the CSV's rows), one per breakdown of the people held, `lists`."""
    output = io.BytesIO()
    workbook = xlsxwriter.Workbook(output, {"in_memory": True})
    # The generation time, not the clock's, so the same report gives the same file.
    workbook.set_properties(
        {
            "title": f"Status report {report['id']}",
            "created": _moment(report["generated_at"]).astimezone(UTC).replace(tzinfo=None),
            "comments": f"content SHA-256 {report['content_sha256']}",
        }
    )
    bold = workbook.add_format({"bold": True})

    figures = workbook.add_worksheet("figures")
    _write_table(figures, ("figure", "key", "value"), document_rows(report), bold=bold)
    figures.set_column(0, 0, 45)
    figures.set_column(1, 1, 28)
    figures.set_column(2, 2, 66)
    figures.freeze_panes(1, 0)

    taken = {"figures", "lists"}
    for name, counts in report["figures"].get("breakdowns", {}).items():
        sheet_name = _sheet_name(name, taken)
        sheet = workbook.add_worksheet(sheet_name)
        _write_table(sheet, ("key", "count"), counts.items(), bold=bold)
        sheet.set_column(0, 0, 24)
        sheet.freeze_panes(1, 0)

    lists = workbook.add_worksheet("lists")
    row = 0
    for path, entries in _report_lists(report):
        lists.write_string(row, 0, f"{path} ({len(entries)})", bold)
        row += 1
        columns = _columns(entries)
        if columns:
            values = ([_cell(entry.get(column)) for column in columns] for entry in entries)
            row = _write_table(lists, columns, values, bold=bold, first_row=row)
        row += 1
    lists.set_column(0, 10, 22)

    workbook.close()
    return output.getvalue()


def _write_table(
    sheet: Any,
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    bold: Any,
    first_row: int = 0,
) -> int:
    """Write a header and rows from `first_row`; the next free row. Text goes in as text,
    never as a formula, whatever it starts with."""
    for column, title in enumerate(header):
        sheet.write_string(first_row, column, title, bold)
    row = first_row + 1
    for values in rows:
        for column, value in enumerate(values):
            if isinstance(value, int) and not isinstance(value, bool):
                sheet.write_number(row, column, value)
            elif value is not None and value != "":
                sheet.write_string(row, column, str(value))
        row += 1
    return row


def _sheet_name(name: str, taken: set[str]) -> str:
    # Excel's limits: 31 characters, none of []:*?/\, unique regardless of case.
    cleaned = "".join("_" if char in "[]:*?/\\" else char for char in name)[:_SHEET_NAME_LIMIT]
    candidate, number = cleaned, 1
    while candidate.lower() in taken:
        number += 1
        suffix = f"_{number}"
        candidate = cleaned[: _SHEET_NAME_LIMIT - len(suffix)] + suffix
    taken.add(candidate.lower())
    return candidate


# ---------------------------------------------------------------------------------------
# PDF

# DejaVu Sans, bundled with matplotlib: Cyrillic and Latin with diacritics.
_FONT_DIRECTORY = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
_FONT = "DejaVuSans"

# Headings of the tables, by figure; a figure not named here is headed by its path.
_TITLES: Mapping[str, str] = {
    "held.by_status": "Held, by status",
    "held.by_deprivation": "Held, by deprivation of liberty",
    "held.by_sentence_type": "Held, by sentence type",
    "held.by_jurisdiction": "Held, by jurisdiction",
    "period.sentences.by_type": "Sentences in the period, by type",
    "period.sentences.by_term_band": "Sentences in the period, by term",
    "period.released.by_mode": "Releases in the period, by mode",
    "period.deported.by_destination": "Deportations in the period, by destination",
    "period.released_foreign_by_citizenship": "Foreign nationals released, by citizenship",
    "claims.unconfirmed.by_status": "Unconfirmed claims, by status",
    "breakdowns.foreign_by_citizenship": "Foreign nationals held, by citizenship",
    "breakdowns.by_gender": "Held, by gender",
    "breakdowns.by_age_band": "Held, by age",
    "breakdowns.by_region": "Held, by region",
    "breakdowns.by_article": "Held, by criminal-code article",
    "breakdowns.by_sentence_band": "Held, by sentence",
    "claims.unconfirmed.items": "Unconfirmed claims (not counted in any figure)",
    "by_collective_event": "Collective events in the period",
    "differences.entered_custody.named": "Entered custody since the previous report (named)",
    "differences.left_custody.named": "Left custody since the previous report (named)",
    "differences.died.named": "Died since the previous report (named)",
}


class _ReportPDF(FPDF):
    def __init__(self, footer_lines: Sequence[str]) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self._footer_lines = footer_lines

    def footer(self) -> None:
        # Every page says which report, counted how and as known when, and its hash: a page
        # quoted alone can be checked.
        self.set_y(-6 - 3.5 * len(self._footer_lines))
        self.set_font(_FONT, size=7)
        self.set_text_color(90)
        for line in self._footer_lines:
            self.cell(0, 3.5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_y(-6 - 3.5)
        self.cell(0, 3.5, f"page {self.page_no()} of {{nb}}", align="R")
        self.set_text_color(0)


def render_pdf(report: Mapping[str, Any]) -> bytes:
    """Key figures, the held-per-month chart, the tables, and a footer on every page."""
    parameters = report["parameters"]
    period = parameters["period"]
    figures = report["figures"]
    pdf = _ReportPDF(
        footer_lines=(
            f"Report {report['id']} · as of {parameters['as_of']} · "
            f"period {period['from']} to {period['to']} · "
            f"jurisdiction {jurisdiction_label(report)} · baseline {parameters['baseline']}",
            f"As known at {parameters['as_known_at']} · generated at {report['generated_at']} · "
            f"generator {report['generator_version']}",
            f"Content SHA-256 {report['content_sha256']}",
        )
    )
    pdf.add_font(_FONT, style="", fname=_FONT_DIRECTORY / "DejaVuSans.ttf")
    pdf.add_font(_FONT, style="B", fname=_FONT_DIRECTORY / "DejaVuSans-Bold.ttf")
    pdf.set_creation_date(_moment(report["generated_at"]))
    pdf.set_title(f"Status report as of {parameters['as_of']}")
    pdf.set_auto_page_break(auto=True, margin=22)
    pdf.add_page()

    pdf.set_font(_FONT, style="B", size=16)
    pdf.cell(
        0, 9, f"Status report as of {parameters['as_of']}", new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    pdf.set_font(_FONT, size=10)
    pdf.cell(
        0,
        6,
        f"Jurisdiction {jurisdiction_label(report)} · period {period['from']} to {period['to']}"
        f" · as known at {parameters['as_known_at']}",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(3)

    _heading(pdf, "Key figures")
    _key_value_table(pdf, _key_figures(report), header=("", "people"))

    _heading(pdf, "People held at the end of each month")
    pdf.image(io.BytesIO(chart_png(report, Chart.held)), w=pdf.epw)
    pdf.ln(2)

    for path, counts in _breakdowns(figures):
        _heading(pdf, _TITLES.get(path, path))
        _key_value_table(
            pdf, ((_label(key), count) for key, count in counts.items()), header=("", "")
        )
    cumulative = figures.get("cumulative", {})
    if cumulative:
        _heading(pdf, f"Since {parameters['baseline']}")
        _key_value_table(
            pdf, ((_label(name), count) for name, count in cumulative.items()), header=("", "")
        )
    for path, entries in _report_lists(report):
        _heading(pdf, f"{_TITLES.get(path, path)}: {len(entries)}")
        if entries:
            _list_table(pdf, entries)
    differences = report.get("differences")
    if differences is not None:
        _heading(pdf, "Since the previous report")
        pdf.multi_cell(
            0,
            5,
            f"The previous report of this series: {differences['previous_id']}, "
            f"as of {differences['previous_as_of']}."
            if differences.get("previous_id")
            else "This is the first report of its series.",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        pdf.ln(1)
        _key_value_table(
            pdf,
            (
                (_label(name), change["count"])
                for name, change in differences.items()
                if isinstance(change, Mapping)
            ),
            header=("", ""),
        )

    return bytes(pdf.output())


def _key_figures(report: Mapping[str, Any]) -> Iterator[tuple[str, Value]]:
    parameters = report["parameters"]
    figures = report["figures"]
    held, period = figures["held"], figures["period"]
    yield f"Held on {parameters['as_of']}", held["total"]
    yield "   recognised political prisoners", held["recognised"]
    yield "   politically persecuted", held["politically_persecuted"]
    yield "Prosecuted at liberty", figures["at_liberty"]["prosecuted"]
    yield "New detentions in the period", period["new_detentions"]
    yield "New recognitions in the period", period["new_recognitions"]
    yield "Released in the period", period["released"]["total"]
    for mode, count in period["released"]["by_mode"].items():
        yield f"   {_label(mode)}", count
    yield "Deported in the period", period["deported"]["total"]
    yield "Deaths in custody in the period", period["deaths_in_custody"]
    yield (
        f"Deaths in custody since {parameters['baseline']}",
        figures["cumulative"]["deaths_in_custody_since_baseline"],
    )
    yield "Unconfirmed claims (counted apart)", figures["claims"]["unconfirmed"]["count"]


def _heading(pdf: FPDF, text: str) -> None:
    # Keep a heading with the first rows of its table.
    if pdf.will_page_break(20):
        pdf.add_page()
    pdf.ln(2)
    pdf.set_font(_FONT, style="B", size=11)
    pdf.multi_cell(0, 6, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_FONT, size=9)


def _key_value_table(
    pdf: FPDF, rows: Iterable[tuple[str, Any]], *, header: tuple[str, str]
) -> None:
    pdf.set_font(_FONT, size=9)
    with pdf.table(
        width=120,
        col_widths=(90, 30),
        align="LEFT",
        line_height=5,
        first_row_as_headings=any(header),
    ) as table:
        if any(header):
            table.row(header)
        for label, value in rows:
            row = table.row()
            row.cell(str(label))
            row.cell(_number(value), align="RIGHT")


def _list_table(pdf: FPDF, entries: Sequence[Mapping[str, Any]]) -> None:
    columns = _columns(entries)
    # Identifiers are for machines: the CSV and the XLSX carry them.
    shown = [column for column in columns if column != "id"] or columns
    pdf.set_font(_FONT, size=8)
    with pdf.table(line_height=4.5, align="LEFT") as table:
        table.row([_label(column) for column in shown])
        for entry in entries:
            row = table.row()
            for column in shown:
                value = entry.get(column)
                text = "—" if value is None else _number(value)
                row.cell(
                    _label(text) if column in _CODED_COLUMNS else text,
                    align="RIGHT" if isinstance(value, int) else "LEFT",
                )


# Columns whose values are names of statuses or kinds, shown as words.
_CODED_COLUMNS = frozenset({"to_status", "kind"})
_NUMBER_RANGE = re.compile(r"(\d+)_(\d+)(y?)")
_LABELS: Mapping[str, str] = {
    "under_1y": "under 1 year",
    "10y_plus": "10 years or more",
    "60_plus": "60 or older",
}


def _label(key: str) -> str:
    """ "1_3y" → "1–3 years", "18_29" → "18–29", "pardoned_and_deported" → "pardoned and
    deported"."""
    key = str(key)
    if key in _LABELS:
        return _LABELS[key]
    if matched := _NUMBER_RANGE.fullmatch(key):
        low, high, years = matched.groups()
        return f"{low}–{high}" + (" years" if years else "")
    return key.replace("_", " ")


def _number(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _moment(moment: str | datetime) -> datetime:
    """A time of the report, as JSON gives it ("2025-10-01T08:00:00Z") or as a datetime."""
    parsed = moment if isinstance(moment, datetime) else datetime.fromisoformat(moment)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
