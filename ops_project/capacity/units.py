"""Numbers as people read them: one ladder of binary units for the report's cells and the charts' axes."""

from __future__ import annotations

BINARY = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def scale(unit: str, peak: float) -> tuple[float, str]:
    """(divisor, label) for values of ``unit`` up to ``peak``."""
    if unit == "bytes":
        return next(((f, name) for f, name in BINARY if abs(peak) >= f), (1, "B"))
    if unit == "share":
        return 0.01, "%"
    return 1, unit


def human(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "bytes":
        factor, name = scale(unit, value)
        return f"{value / factor:.2f} {name}" if factor > 1 else f"{value:.0f} B"
    if unit == "share":
        return f"{value:.2%}"
    if abs(value) >= 1e6:
        return f"{value / 1e6:.2f} M"
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:.2f}"
