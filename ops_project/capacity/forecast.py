"""One series in, one forecast out: a least-squares trend against a ceiling, with the rules that keep a
straight line honest.

- Too little history (under ``MIN_SPAN_DAYS`` or ``MIN_POINTS``) is ``insufficient_data``: never a number.
- A level shift (a migration, a bulk import, a purge) is found by the best two-segment split (prefix sums make
  every split O(1)); it counts when the jump is many residual sigmas and the split explains most of the error.
  The trend is fitted after the last shift.
- Weekly seasonality (two harmonics of a 7-day period) enters the model when an F-test says it explains the
  residuals, so a weekly cycle neither bends the trend nor widens the interval for nothing.
- A flat or shrinking series (slope not significantly above zero) has no date; a series already at or over a
  level says 0 days.
- R² is reported, and a low one reads as low confidence.

The prediction interval is the ordinary least-squares one (Student t, 95 %) at the horizon.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import numpy as np
from scipy import stats

MIN_POINTS = 24
MIN_SPAN_DAYS = 2.0
SHIFT_SIGMAS = 6.0  # a level shift: a jump this many residual sigmas ...
SHIFT_EXPLAINS = 0.75  # ... that removes this share of the single line's squared error
SLOPE_T = 3.0  # a slope this many standard errors above zero is growth; below, the series is flat
SEASON_P = 0.01  # weekly harmonics enter the model below this F-test p-value
DAY = 86400.0


@dataclass(frozen=True)
class Forecast:
    points: int
    span_days: float
    insufficient_data: bool
    reason: str  # what the numbers mean, in words (or why there are none)
    last_value: float | None
    last_at: str | None
    limit: float | None
    over_limit: bool  # the last observation is at or over the limit (a fact, whatever the history)
    slope_per_day: float | None = None
    slope_stderr: float | None = None
    r2: float | None = None
    confidence: str | None = None  # high (R² ≥ 0.9), medium (≥ 0.6), low
    level: float | None = None  # the trend's value at the last observation
    seasonal: bool = False
    level_shift_at: str | None = None
    fitted_from: str | None = None
    fitted_points: int | None = None
    days_to_limit: float | None = None
    days_to_80: float | None = None
    limit_at: str | None = None
    limit80_at: str | None = None
    horizon_days: int = 90
    horizon_value: float | None = None
    horizon_low: float | None = None
    horizon_high: float | None = None
    interval_now: float | None = None  # half-width of the 95 % prediction interval at the last observation

    def to_dict(self) -> dict:
        return asdict(self)

    def predict(self, at: datetime) -> float | None:
        """The trend's value at ``at`` (without the weekly cycle): what later reports score this one by."""
        return predict(self.__dict__, at)


def predict(stored: dict, at: datetime) -> float | None:
    """The trend's value at ``at`` from a forecast's fields (``Forecast.__dict__`` or a report's JSON)."""
    if stored.get("level") is None or stored.get("slope_per_day") is None or not stored.get("last_at"):
        return None
    days = (at - datetime.fromisoformat(stored["last_at"])).total_seconds() / DAY
    return stored["level"] + stored["slope_per_day"] * days


def _line_sse(n, st, sy, stt, sty, syy):
    """Residual sum of squares of the least-squares line through points with these sums (arrays allowed)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        var_t = stt - st * st / n
        cov = sty - st * sy / n
        var_y = syy - sy * sy / n
        sse = var_y - np.where(var_t > 0, cov * cov / np.where(var_t > 0, var_t, 1), 0)
    return np.maximum(sse, 0)


def _line(t, y):
    slope, intercept = np.polyfit(t, y, 1) if len(t) > 1 and np.ptp(t) > 0 else (0.0, float(np.mean(y)))
    return float(slope), float(intercept)


def find_level_shift(t: np.ndarray, y: np.ndarray, min_points: int = 6) -> int | None:
    """Index of the first point after the most convincing level shift, or None."""
    n = len(t)
    if n < 2 * min_points:
        return None
    cs = [np.concatenate([[0.0], np.cumsum(a)]) for a in (np.ones(n), t, y, t * t, t * y, y * y)]
    total = [c[-1] for c in cs]
    ks = np.arange(min_points, n - min_points + 1)
    left = [c[ks] for c in cs]
    right = [tot - lc for tot, lc in zip(total, left, strict=True)]
    sse_split = _line_sse(*left) + _line_sse(*right)
    sse_one = float(_line_sse(*total))
    best = int(np.argmin(sse_split))
    k, sse = int(ks[best]), float(sse_split[best])
    if sse_one <= 0 or sse > (1 - SHIFT_EXPLAINS) * sse_one:
        return None
    sigma = math.sqrt(sse / max(n - 4, 1))
    (s1, i1), (s2, i2) = _line(t[:k], y[:k]), _line(t[k:], y[k:])
    at = (t[k - 1] + t[k]) / 2
    jump = (s2 * at + i2) - (s1 * at + i1)
    # a jump many sigmas wide, and wider than what either segment's own trend moves between two points
    step = max(abs(s1), abs(s2)) * max(float(np.median(np.diff(t))), 1e-9)
    if abs(jump) <= SHIFT_SIGMAS * max(sigma, 1e-12) or abs(jump) <= 3 * step:
        return None
    return k


def _design(t: np.ndarray, seasonal: bool) -> np.ndarray:
    cols = [np.ones_like(t), t]
    if seasonal:
        w = 2 * math.pi * t / 7.0
        cols += [np.sin(w), np.cos(w), np.sin(2 * w), np.cos(2 * w)]
    return np.column_stack(cols)


def _fit(t: np.ndarray, y: np.ndarray, seasonal: bool):
    x = _design(t, seasonal)
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    return x, beta, float(resid @ resid)


def forecast(times: list[datetime], values: list[float], limit: float | None, *, horizon_days: int = 90,
             now: datetime | None = None) -> Forecast:
    """The forecast of one series. ``now`` (default: the last observation) is where days are counted from."""
    pairs = sorted((t, float(v)) for t, v in zip(times, values, strict=True) if v is not None and math.isfinite(v))
    n = len(pairs)
    span = (pairs[-1][0] - pairs[0][0]).total_seconds() / DAY if n > 1 else 0.0
    last_at, last_value = (pairs[-1][0], pairs[-1][1]) if pairs else (None, None)
    over = limit is not None and last_value is not None and last_value >= limit
    base = dict(points=n, span_days=round(span, 3), last_value=last_value,
                last_at=last_at.isoformat() if last_at else None, limit=limit, over_limit=over,
                horizon_days=horizon_days)
    if n < MIN_POINTS or span < MIN_SPAN_DAYS:
        return Forecast(insufficient_data=True, **base,
                        reason=f"insufficient data: {n} points over {span:.1f} days (a forecast needs at least "
                               f"{MIN_POINTS} points over {MIN_SPAN_DAYS:g} days)"
                               + ("; the last value is already over the limit" if over else ""))
    origin = pairs[0][0]
    t = np.array([(p[0] - origin).total_seconds() / DAY for p in pairs])
    y = np.array([p[1] for p in pairs])
    start, shift_at = 0, None
    for _ in range(4):  # the last of several shifts wins
        k = find_level_shift(t[start:], y[start:])
        if k is None:
            break
        start += k
        shift_at = pairs[start][0]
    ts, ys = t[start:], y[start:]
    seg_span = float(ts[-1] - ts[0])
    if shift_at is not None and (len(ts) < MIN_POINTS or seg_span < MIN_SPAN_DAYS):
        return Forecast(insufficient_data=True, **base, level_shift_at=shift_at.isoformat(),
                        reason=f"level shift at {shift_at.isoformat()}: {len(ts)} points over {seg_span:.1f} days "
                               f"since, too few to fit a trend after it")
    x, beta, sse = _fit(ts, ys, False)
    seasonal = False
    if seg_span >= 14 and len(ts) >= 28:
        x2, beta2, sse2 = _fit(ts, ys, True)
        dof = len(ts) - x2.shape[1]
        if sse2 < sse and dof > 0:
            f = ((sse - sse2) / 4) / (sse2 / dof) if sse2 > 0 else math.inf
            if stats.f.sf(f, 4, dof) < SEASON_P:
                x, beta, sse, seasonal = x2, beta2, sse2, True
    m, p = len(ts), x.shape[1]
    dof = max(m - p, 1)
    s2 = sse / dof
    xtx_inv = np.linalg.pinv(x.T @ x)
    slope = float(beta[1])
    slope_se = math.sqrt(max(s2 * xtx_inv[1, 1], 0.0))
    sst = float(((ys - ys.mean()) ** 2).sum())
    r2 = 1.0 - sse / sst if sst > 0 else 1.0
    t_last = float(t[-1])
    t_now = t_last + ((now - last_at).total_seconds() / DAY if now else 0.0)
    level = float(beta[0] + slope * t_last)
    level_now = float(beta[0] + slope * t_now)
    growing = slope > 0 and slope > SLOPE_T * slope_se
    tcrit = float(stats.t.ppf(0.975, dof))
    x0 = np.zeros(p)
    x0[0], x0[1] = 1.0, t_now + horizon_days
    half = tcrit * math.sqrt(max(s2 * (1 + x0 @ xtx_inv @ x0), 0.0))
    x0[1] = t_now
    half_now = tcrit * math.sqrt(max(s2 * (1 + x0 @ xtx_inv @ x0), 0.0))
    at_h = float(beta[0] + slope * (t_now + horizon_days))
    now_at = now or last_at

    def days_to(ceiling: float | None) -> float | None:
        if ceiling is None:
            return None
        if last_value >= ceiling or level_now >= ceiling:
            return 0.0
        return round((ceiling - level_now) / slope, 2) if growing else None

    d100 = days_to(limit)
    d80 = days_to(0.8 * limit if limit is not None else None)
    confidence = "high" if r2 >= 0.9 else "medium" if r2 >= 0.6 else "low"
    if not growing:
        trend = "shrinking" if slope < -SLOPE_T * slope_se else "flat"
        reason = f"{trend}: {slope:+.4g}/day (± {slope_se:.2g}), no date to the limit"
    else:
        reason = f"growing {slope:.4g}/day, R² {r2:.2f} ({confidence} confidence)"
    if over:
        reason = "already over the limit; " + reason
    if shift_at is not None:
        reason += f"; fitted after the level shift at {shift_at.isoformat()}"
    if seasonal:
        reason += "; weekly cycle modelled"

    def when(days: float | None) -> str | None:
        return (now_at + timedelta(days=days)).isoformat() if days is not None else None

    return Forecast(
        insufficient_data=False, reason=reason, **base, slope_per_day=slope, slope_stderr=slope_se, r2=round(r2, 4),
        confidence=confidence, level=level, seasonal=seasonal,
        level_shift_at=shift_at.isoformat() if shift_at else None, fitted_from=pairs[start][0].isoformat(),
        fitted_points=m, days_to_limit=d100, days_to_80=d80, limit_at=when(d100), limit80_at=when(d80),
        horizon_value=at_h, horizon_low=at_h - half, horizon_high=at_h + half, interval_now=half_now)
