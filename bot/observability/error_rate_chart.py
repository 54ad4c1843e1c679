"""The error-rate chart as a PNG: the fine line, the runbook's 15-minute buckets over it, the severity's
threshold, and markers for deployments, the declaration, each remediation and now.

`ChartData` is everything the picture is drawn from, so tests (and the text beside the chart) check the data,
never pixels. matplotlib is imported on first use, with the Agg backend: no display, and no cost at start-up.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from datetime import datetime

from bot.observability.metric_analysis import Bucket
from integrations.observability_reads import Series

WIDTH_PX, HEIGHT_PX, DPI = 1000, 450, 100
_MARKER_COLOURS = {"deploy": "#7b1fa2", "declared": "#d32f2f", "remediation": "#1976d2", "now": "#424242"}
# pyplot keeps global state; one figure at a time keeps concurrent workers from drawing on each other's axes.
_DRAWING = threading.Lock()


@dataclass(frozen=True)
class Marker:
    at: datetime
    kind: str  # deploy | declared | remediation | now
    label: str


@dataclass(frozen=True)
class ChartData:
    title: str
    start: datetime
    end: datetime
    series: Series
    buckets: tuple[Bucket, ...]
    threshold: float
    markers: tuple[Marker, ...]


def _days(moment: datetime) -> float:
    """A moment on matplotlib's date axis: days since its epoch, 1970-01-01 UTC."""
    return moment.timestamp() / 86400


def draw(chart: ChartData) -> bytes:
    """The chart as PNG bytes, WIDTH_PX x HEIGHT_PX."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    with _DRAWING:
        figure, axes = plt.subplots(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
        try:
            times = [_days(point.at) for point in chart.series]
            values = [point.value * 100 for point in chart.series]
            axes.plot(times, values, color="#9e9e9e", linewidth=0.8, label="error rate")
            if chart.buckets:
                axes.step(
                    [_days(bucket.start) for bucket in chart.buckets] + [_days(chart.end)],
                    [bucket.mean * 100 for bucket in chart.buckets] + [chart.buckets[-1].mean * 100],
                    where="post",
                    color="#e65100",
                    linewidth=2,
                    label="15-minute mean",
                )
            axes.axhline(
                chart.threshold * 100,
                color="#2e7d32",
                linestyle="--",
                linewidth=1,
                label=f"threshold {chart.threshold * 100:g}%",
            )
            # Headroom above the highest value for the markers' labels.
            top = max([*values, chart.threshold * 100]) * 1.45
            for marker in chart.markers:
                colour = _MARKER_COLOURS.get(marker.kind, "#424242")
                axes.axvline(_days(marker.at), color=colour, linestyle=":", linewidth=1.2)
                axes.annotate(
                    marker.label, (_days(marker.at), top * 0.98), rotation=90, va="top", ha="right",
                    fontsize=7, color=colour, backgroundcolor="white",
                )  # fmt: skip
            axes.set_xlim(_days(chart.start), _days(chart.end))
            axes.set_ylim(0, top)
            axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}%"))
            hours = (chart.end - chart.start).total_seconds() / 3600
            # Ticks on the runbook's quarter hours, or whole hours when that would crowd the axis.
            axes.xaxis.set_major_locator(
                mdates.MinuteLocator(byminute=(0, 15, 30, 45))
                if hours <= 4
                else mdates.HourLocator(interval=max(1, round(hours / 8)))
            )
            axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
            axes.set_title(chart.title, fontsize=10)
            axes.set_xlabel("UTC", fontsize=8, loc="right")
            axes.grid(alpha=0.3)
            axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), fontsize=7, ncols=3, frameon=False)
            figure.tight_layout()
            out = io.BytesIO()
            figure.savefig(out, format="png", dpi=DPI)
            return out.getvalue()
        finally:
            plt.close(figure)
