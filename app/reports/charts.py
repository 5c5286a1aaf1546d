"""The report's charts as PNG images, drawn with matplotlib's Agg renderer.

Each chart is its own `Figure` (no pyplot): nothing global is shared between requests, so
charts can be drawn in worker threads side by side.
"""

import io
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# The release modes in the doc's order: each keeps its colour from one chart to the next.
from app.reports.asof import RELEASE_MODES

# 1200 x 600 pixels, the size docs/reports.md promises.
WIDTH_INCHES, HEIGHT_INCHES, DPI = 12, 6, 100


class Chart(StrEnum):
    held = "held"
    releases = "releases"


def chart_png(report: Mapping[str, Any], chart: Chart = Chart.held) -> bytes:
    figure = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI)
    axes = figure.add_subplot()
    series = report["figures"]["series"]
    if chart is Chart.held:
        _draw_held(axes, series["held_by_month"], jurisdiction=jurisdiction_label(report))
    else:
        _draw_releases(axes, series["releases_by_month"])
    figure.text(0.01, 0.012, provenance(report), fontsize=8, color="dimgray")
    # The releases' legend stands right of the bars, which would otherwise hide it.
    figure.subplots_adjust(
        left=0.07, right=0.98 if chart is Chart.held else 0.80, top=0.92, bottom=0.13
    )
    image = io.BytesIO()
    # No "Software" entry (it names the matplotlib version), so the same report draws the
    # same bytes; matplotlib writes no date into a PNG.
    figure.savefig(image, format="png", dpi=DPI, metadata={"Software": None})
    return image.getvalue()


def jurisdiction_label(report: Mapping[str, Any]) -> str:
    """A report without a jurisdiction counts them all."""
    return report["parameters"].get("jurisdiction") or "all jurisdictions"


def provenance(report: Mapping[str, Any]) -> str:
    """What a chart shown on its own must say of where its numbers come from."""
    parameters = report["parameters"]
    return (
        f"As of {parameters['as_of']} · as known at {parameters['as_known_at']} · "
        f"report {report['id']} · SHA-256 {report['content_sha256']}"
    )


def _draw_held(axes: Axes, months: Sequence[Mapping[str, Any]], *, jurisdiction: str) -> None:
    axes.set_title(f"People held at the end of each month ({jurisdiction})")
    if not months:
        _say_no_data(axes)
        return
    positions = range(len(months))
    held = [month["held"] for month in months]
    recognised = [month["recognised"] for month in months]
    axes.fill_between(positions, held, color="tab:blue", alpha=0.15, linewidth=0)
    axes.plot(positions, held, color="tab:blue", marker="o", markersize=3, label="held")
    axes.plot(
        positions,
        recognised,
        color="tab:red",
        marker="o",
        markersize=3,
        label="of whom recognised political prisoners",
    )
    # Labelled by month ("2025-09"), not by day: a date axis would put 30 September
    # next to the October tick.
    _month_axis(axes, [str(month["month_end"])[:7] for month in months])
    _count_axis(axes)
    axes.legend(loc="lower left")


def _draw_releases(axes: Axes, months: Sequence[Mapping[str, Any]]) -> None:
    axes.set_title("Releases by mode, per month")
    if not months:
        _say_no_data(axes)
        return
    # A mode with no release in any month would only crowd the legend.
    modes = [mode for mode in RELEASE_MODES if any(month["by_mode"].get(mode) for month in months)]
    for month in months:
        modes.extend(
            mode for mode, count in month["by_mode"].items() if count and mode not in modes
        )
    positions = range(len(months))
    bottoms = [0] * len(months)
    colours = colormaps["tab10"]
    for mode in modes:
        counts = [month["by_mode"].get(mode, 0) for month in months]
        axes.bar(
            positions,
            counts,
            bottom=bottoms,
            width=0.8,
            color=colours(_colour_index(mode) % colours.N),
            label=mode.replace("_", " "),
        )
        bottoms = [bottom + count for bottom, count in zip(bottoms, counts, strict=True)]
    _month_axis(axes, [str(month["month"]) for month in months])
    _count_axis(axes)
    if modes:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)


def _colour_index(mode: str) -> int:
    return RELEASE_MODES.index(mode) if mode in RELEASE_MODES else len(RELEASE_MODES)


def _month_axis(axes: Axes, months: Sequence[str]) -> None:
    # At most about twelve labels, so 36 months stay legible; the latest month always has one.
    step = max(1, -(-len(months) // 12))
    shown = range(len(months) - 1, -1, -step)[::-1]
    axes.set_xticks(list(shown), [months[index] for index in shown])
    axes.set_xlim(-0.6, len(months) - 0.4)


def _count_axis(axes: Axes) -> None:
    axes.set_ylim(bottom=0)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)


def _say_no_data(axes: Axes) -> None:
    axes.text(0.5, 0.5, "No data", ha="center", va="center", transform=axes.transAxes)
    axes.set_axis_off()
