"""The forecaster on generated series whose answer is known: the truth is computed here from the generating
line, not by the code under test. Tolerances are stated per case."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from ops_project.capacity.forecast import forecast

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def series(days: float, every_hours: float, fn, *, noise: float = 0.0, seed: int = 1):
    rng = random.Random(seed)
    times, values = [], []
    t = 0.0
    while t <= days * 24 + 1e-9:
        d = t / 24
        times.append(T0 + timedelta(hours=t))
        values.append(fn(d) + (rng.gauss(0, noise) if noise else 0.0))
        t += every_hours
    return times, values


def truth_days(level_now: float, slope: float, ceiling: float) -> float:
    return (ceiling - level_now) / slope


def test_a_straight_line_reaches_its_limit_when_the_line_says():
    # 1 GB growing 50 MB a day, hourly for 30 days, limit 5 GB: at day 30 the level is 2.5 GB
    times, values = series(30, 1, lambda d: 1e9 + 5e7 * d)
    f = forecast(times, values, 5e9)
    assert not f.insufficient_data and f.level_shift_at is None and not f.seasonal
    assert math.isclose(f.slope_per_day, 5e7, rel_tol=1e-6)
    assert math.isclose(f.days_to_limit, truth_days(2.5e9, 5e7, 5e9), rel_tol=0.01)  # 50 days
    assert math.isclose(f.days_to_80, truth_days(2.5e9, 5e7, 4e9), rel_tol=0.01)  # 30 days
    assert f.r2 > 0.999 and f.confidence == "high"
    assert datetime.fromisoformat(f.limit_at).date() == (times[-1] + timedelta(days=50)).date()


def test_weekly_seasonality_and_noise_do_not_bend_the_trend():
    # weekday traffic: +-8 % of the level on a 7-day cycle, 2 % noise, 6-hourly for 8 weeks, limit 300
    def fn(d):
        return 100 + 1.5 * d + 12 * math.sin(2 * math.pi * d / 7 + 0.7)

    times, values = series(56, 6, fn, noise=2.0, seed=4)
    f = forecast(times, values, 300)
    assert f.seasonal  # the cycle is modelled ...
    assert math.isclose(f.slope_per_day, 1.5, rel_tol=0.05)  # ... so the trend is the generating one
    assert math.isclose(f.days_to_limit, truth_days(100 + 1.5 * 56, 1.5, 300), rel_tol=0.08)  # ~77 days
    assert f.horizon_low < 100 + 1.5 * (56 + 90) < f.horizon_high  # the truth at the horizon is inside the band
    assert f.level_shift_at is None


def test_after_a_level_shift_the_trend_is_the_new_one():
    # a bulk import on day 20 adds 400 MB and the growth doubles after it
    def fn(d):
        return 1e8 + 2e6 * d if d < 20 else 5e8 + 4e6 * d

    times, values = series(40, 2, fn, noise=1e6, seed=2)
    f = forecast(times, values, 2e9)
    assert f.level_shift_at is not None
    assert abs((datetime.fromisoformat(f.level_shift_at) - (T0 + timedelta(days=20))).total_seconds()) <= 2 * 3600
    assert math.isclose(f.slope_per_day, 4e6, rel_tol=0.03)
    level_now = 5e8 + 4e6 * 40
    assert math.isclose(f.days_to_limit, truth_days(level_now, 4e6, 2e9), rel_tol=0.03)  # 335 days


def test_a_straight_steep_line_is_not_a_level_shift():
    times, values = series(10, 1, lambda d: 10 + 100 * d, noise=5, seed=8)
    f = forecast(times, values, 1e6)
    assert f.level_shift_at is None and math.isclose(f.slope_per_day, 100, rel_tol=0.01)


def test_too_little_history_is_insufficient_never_a_number():
    short = series(1.5, 1, lambda d: 100 + 50 * d)  # 37 points over 1.5 days
    few = series(10, 24, lambda d: 100 + 50 * d)  # 11 points over 10 days
    for times, values in (short, few):
        f = forecast(times, values, 200)
        assert f.insufficient_data and f.days_to_limit is None and f.slope_per_day is None
        assert "insufficient data" in f.reason
    assert forecast([], [], 10).insufficient_data


def test_a_shrinking_series_has_no_date():
    times, values = series(20, 3, lambda d: 5e9 - 4e7 * d, noise=1e6)
    f = forecast(times, values, 6e9)
    assert f.slope_per_day < 0 and f.days_to_limit is None and f.limit_at is None and f.days_to_80 is None
    assert f.reason.startswith("shrinking")


def test_noise_around_a_constant_is_flat_with_no_date():
    times, values = series(28, 2, lambda d: 500.0, noise=20, seed=11)
    f = forecast(times, values, 600)
    assert f.days_to_limit is None and f.reason.startswith("flat")
    assert f.confidence == "low"  # R² near zero is shown as low confidence


def test_a_series_already_over_its_limit_says_zero_days():
    times, values = series(10, 1, lambda d: 900 + 20 * d)
    f = forecast(times, values, 1000)
    assert f.over_limit and f.days_to_limit == 0 and f.days_to_80 == 0
    flat = forecast(*series(10, 1, lambda d: 1200.0), 1000)  # over and not growing: still 0, not "no date"
    assert flat.days_to_limit == 0
    short = forecast(*series(0.5, 1, lambda d: 1200.0), 1000)  # over, with too little history: says so
    assert short.insufficient_data and short.over_limit and short.days_to_limit is None


def test_a_stored_forecast_predicts_what_it_promised():
    from ops_project.capacity.forecast import predict

    times, values = series(30, 1, lambda d: 1e9 + 5e7 * d)
    f = forecast(times, values, 5e9)
    later = times[-1] + timedelta(days=7)
    assert math.isclose(predict(f.to_dict(), later), 1e9 + 5e7 * 37, rel_tol=1e-6)
    assert math.isclose(f.predict(later), predict(f.to_dict(), later))
