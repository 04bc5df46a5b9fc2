"""One PNG per resource: the history, the fitted trend to the horizon, its 95 % interval, the limit and 80 %."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

from ops_project.capacity.forecast import Forecast
from ops_project.capacity.units import scale


def render(title: str, unit: str, times: list[datetime], values: list[float], f: Forecast,
           *, dpi: int = 72) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import dates as mdates
    from matplotlib import pyplot as plt

    peak = max([*values, f.limit or 0])
    factor, name = scale(unit, peak)
    fig, ax = plt.subplots(figsize=(7.5, 3.4), dpi=dpi)
    try:
        ax.plot(times, [v / factor for v in values], ".", ms=3, color="#1f77b4", label="measured")
        if not f.insufficient_data and f.level is not None:
            start = datetime.fromisoformat(f.fitted_from)
            last = datetime.fromisoformat(f.last_at)
            span = f.horizon_days  # stop a little past the limit, so the history stays readable
            if f.days_to_limit:
                span = min(span, max(f.days_to_limit * 1.3, 14))
            end = last + timedelta(days=span)
            xs = [start, last, end]
            ys = [f.predict(x) / factor for x in xs]
            ax.plot(xs, ys, "-", color="#ff7f0e", lw=1.5, label=f"trend (R² {f.r2:.2f})")
            w_end = f.interval_now + (f.horizon_high - f.horizon_value - f.interval_now) * span / f.horizon_days
            lo = [(f.predict(last) - f.interval_now) / factor, (f.predict(end) - w_end) / factor]
            hi = [(f.predict(last) + f.interval_now) / factor, (f.predict(end) + w_end) / factor]
            ax.fill_between([last, end], lo, hi, color="#ff7f0e", alpha=0.18, label="95 % interval")
        if f.limit:
            ax.axhline(f.limit / factor, color="#d62728", lw=1.2, label="limit")
            ax.axhline(0.8 * f.limit / factor, color="#d62728", lw=0.8, ls="--", label="80 %")
        if f.level_shift_at:
            ax.axvline(datetime.fromisoformat(f.level_shift_at), color="#7f7f7f", lw=0.8, ls=":",
                       label="level shift")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
        fig.autofmt_xdate()
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=dpi)
        return out.getvalue()
    finally:
        plt.close(fig)
