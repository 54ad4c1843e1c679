"""The runbook's numbers from a series: where a wrong answer would resolve an incident early or blame the wrong
deployment. Series are built by hand here; the other tests read them from a real Prometheus."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.observability.metric_analysis import excursion, quiet
from integrations.observability_reads import Point, Series

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _series(*values: tuple[int, float]) -> Series:
    """(minutes before NOW, value) pairs."""
    return tuple(Point(NOW - minutes * MINUTE, value) for minutes, value in values)


def test_minutes_without_data_do_not_count_as_quiet() -> None:
    # High until 20 minutes ago, then one low reading at -15 and one at -1, and nothing in between.
    series = _series(*((m, 0.05) for m in range(40, 19, -1)), (15, 0.0005), (1, 0.0005))
    verdict = quiet(series, 0.001, NOW, step=MINUTE)
    assert not verdict.ok
    assert verdict.since == NOW - MINUTE


def test_ten_minutes_of_readings_under_the_threshold_are_quiet() -> None:
    series = _series(*((m, 0.05) for m in range(40, 12, -1)), *((m, 0.0005) for m in range(12, -1, -1)))
    verdict = quiet(series, 0.001, NOW, step=MINUTE)
    assert verdict.ok
    assert verdict.lasted == 12 * MINUTE


def test_the_onset_is_the_current_excursion_not_an_older_spike_in_the_baseline_hour() -> None:
    window_start = NOW - 120 * MINUTE
    old_spike = [(m, 0.2) for m in range(160, 150, -1)]  # before the window: the baseline's hour
    healthy = [(m, 0.0005) for m in range(150, 20, -1)]
    incident = [(m, 0.02) for m in range(20, -1, -1)]
    summary = excursion(_series(*old_spike, *healthy, *incident), 0.001, NOW, since=window_start)
    assert summary.onset == NOW - 20 * MINUTE
    assert summary.peak is not None and summary.peak.value == 0.02


def test_an_excursion_already_under_way_when_the_data_begins_has_no_known_onset() -> None:
    summary = excursion(_series(*((m, 0.05) for m in range(60, -1, -1))), 0.001, NOW)
    assert summary.onset is None
