"""The runbook's numbers, computed from a series: 15-minute buckets, baseline, peak, onset, and the verdicts.

Everything here is pure: series in, facts out. The thresholds are the runbook's (001, "Validation criteria" and
"Resolution criteria"); P3 and P4 have none of their own there, so they use P2's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from integrations.observability_reads import Point, Series

BUCKET = timedelta(minutes=15)  # "grouped by 15-minute intervals"
BASELINE_SPAN = timedelta(hours=1)  # baseline: the hour before onset
VALIDATION_TARGET = 0.001  # "Error rate drops to < 0.1% within 5 minutes of fix"
LATENCY_TOLERANCE = 0.10  # "Latency returns to baseline": within 10% of it
QUIET_NEEDED = timedelta(minutes=10)  # "for 10+ consecutive minutes"
# A reading whose newest point is older than this says nothing about "now": the service may have stopped
# reporting, which is not the same as recovering.
STALE_AFTER = timedelta(minutes=5)


def threshold_for(severity: int) -> float:
    """The resolution threshold: < 0.1% for P1, < 0.5% for P2 (and below)."""
    return 0.001 if severity == 1 else 0.005


@dataclass(frozen=True)
class Bucket:
    start: datetime
    mean: float


def buckets(series: Series, start: datetime, width: timedelta = BUCKET) -> tuple[Bucket, ...]:
    """The series' mean per `width`, on a grid that starts at `start`; empty buckets are left out."""
    sums: dict[int, tuple[float, int]] = {}
    for point in series:
        if point.at < start:
            continue
        index = int((point.at - start) / width)
        total, count = sums.get(index, (0.0, 0))
        sums[index] = (total + point.value, count + 1)
    return tuple(
        Bucket(start + width * index, total / count) for index, (total, count) in sorted(sums.items())
    )


def mean_between(series: Series, start: datetime, end: datetime) -> float | None:
    values = [point.value for point in series if start <= point.at < end]
    return math.fsum(values) / len(values) if values else None


@dataclass(frozen=True)
class Excursion:
    """What the error rate did: now, at its worst, since when it has been high, and what normal looked like."""

    current: Point | None
    peak: Point | None
    onset: datetime | None  # start of the run above the threshold that holds the peak; None: never above
    baseline: float | None  # mean over the hour before onset (before `reference` when there is no onset)
    threshold: float


def excursion(
    series: Series, threshold: float, reference: datetime, since: datetime | None = None
) -> Excursion:
    """Summarise an error-rate series against `threshold`: the peak from `since` on (the chart's window; the
    points before it are the baseline's), and the onset of the run above the threshold that holds it.
    An onset at the very first point read is not known (it began before the data), so it is None.
    `reference` stands in for onset when there is none (the declaration), so a baseline can still be given."""
    if not series:
        return Excursion(None, None, None, None, threshold)
    shown = [i for i, point in enumerate(series) if since is None or point.at >= since] or [len(series) - 1]
    peak_index = max(shown, key=lambda i: (series[i].value, i))
    peak = series[peak_index]
    onset: datetime | None = None
    if peak.value >= threshold:
        first = peak_index
        while first > 0 and series[first - 1].value >= threshold:
            first -= 1
        onset = series[first].at if first > 0 else None
    anchor = onset or reference
    baseline = mean_between(series, anchor - BASELINE_SPAN, anchor)
    return Excursion(series[-1], peak, onset, baseline, threshold)


@dataclass(frozen=True)
class DeployRates:
    """The error rate around the last deployment: the rollback issue's justification."""

    backend: str
    deployed_at: datetime
    before: float | None  # mean over the hour before it
    after: float | None  # mean since
    peak: float | None  # highest since


def rates_around(series: Series, backend: str, deployed_at: datetime) -> DeployRates:
    since = [point.value for point in series if point.at >= deployed_at]
    return DeployRates(
        backend,
        deployed_at,
        mean_between(series, deployed_at - BASELINE_SPAN, deployed_at),
        math.fsum(since) / len(since) if since else None,
        max(since) if since else None,
    )


@dataclass(frozen=True)
class Quiet:
    """How long the error rate has stayed under a threshold, up to its newest point."""

    ok: bool
    since: datetime | None  # first point of the trailing run under the threshold
    lasted: timedelta
    worst: float | None  # the highest value in the last QUIET_NEEDED (what a refusal shows)
    newest: Point | None
    stale: bool


def quiet(
    series: Series, threshold: float, now: datetime, step: timedelta, needed: timedelta = QUIET_NEEDED
) -> Quiet:
    """Whether the error rate has been under `threshold` for `needed` (the resolution criterion). A gap of
    more than two steps without data ends the run: no data is not the same as no errors."""
    if not series:
        return Quiet(False, None, timedelta(0), None, None, stale=True)
    newest = series[-1]
    recent = [point.value for point in series if point.at > newest.at - needed]
    worst = max(recent) if recent else None
    first = len(series)
    while (
        first > 0
        and series[first - 1].value < threshold
        and (first == len(series) or series[first].at - series[first - 1].at <= 2 * step)
    ):
        first -= 1
    since = series[first].at if first < len(series) else None
    lasted = newest.at - since if since is not None else timedelta(0)
    stale = now - newest.at > STALE_AFTER
    return Quiet(lasted >= needed and not stale, since, lasted, worst, newest, stale)


@dataclass(frozen=True)
class Verdict:
    """One validation criterion: passed or not, and the numbers that decided it (None: it could not be
    checked, e.g. no latency query in the catalog)."""

    criterion: str
    ok: bool | None
    detail: str


def error_rate_verdict(series: Series, now: datetime) -> Verdict:
    name = "Error rate below 0.1% within 5 minutes of the fix"
    if not series or now - series[-1].at > STALE_AFTER:
        return Verdict(name, False, "no recent data points")
    current = series[-1].value
    return Verdict(name, current < VALIDATION_TARGET, f"now {percent(current)}")


def latency_verdict(series: Series, baseline: float | None, now: datetime) -> Verdict:
    name = "Latency back within 10% of baseline"
    if baseline is None:
        return Verdict(name, None, "no baseline: no latency data in the hour before the errors began")
    if not series or now - series[-1].at > STALE_AFTER:
        return Verdict(name, False, "no recent data points")
    current = series[-1].value
    limit = baseline * (1 + LATENCY_TOLERANCE)
    return Verdict(
        name,
        current <= limit,
        f"now {seconds(current)}, baseline {seconds(baseline)} (limit {seconds(limit)})",
    )


def percent(fraction: float) -> str:
    """0.00052 -> "0.052%": enough digits to compare with the runbook's 0.1% and 0.5%."""
    value = fraction * 100
    if value == 0:
        return "0%"
    if value >= 10:
        return f"{value:.1f}%"
    return f"{value:.2g}%" if value < 0.1 else f"{value:.3g}%"


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
