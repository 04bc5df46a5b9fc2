"""Is this release slower than the last good one? A comparison that does not cry wolf.

p95 of a few samples is nearly the maximum and moves with every hiccup: comparing two such numbers
failed the same unchanged service twice. Here, as in Kayenta's canary judge, a regression needs all of:

- statistical evidence: a one-sided Mann-Whitney U test (scipy) says this release's latencies are
  stochastically larger than the baseline's, at ``alpha``;
- a meaningful effect: p95 worse than ``factor`` × the baseline's p95, and
- an absolute floor: p95 at least ``floor_ms`` worse: below that a difference is never a regression.

When the baseline kept only its p95 (validations recorded before samples were kept), there is no test to
run: then only the factor and the floor apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_SAMPLES = 8  # below this the test has no power: say so, never convict


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] if ordered else 0.0


@dataclass(frozen=True)
class Comparison:
    endpoint: str
    regressed: bool
    p95_now: float
    p95_base: float
    p_value: float | None  # None: no samples to test (baseline kept only its p95, or too few)
    reason: str


def compare(endpoint: str, now: list[float], base_samples: list[float] | None, base_p95: float, *,
            factor: float, floor_ms: float, alpha: float) -> Comparison:
    now_p95 = p95(now)
    worse_enough = now_p95 > factor * base_p95 and now_p95 - base_p95 >= floor_ms
    if base_samples and len(base_samples) >= MIN_SAMPLES and len(now) >= MIN_SAMPLES:
        from scipy.stats import mannwhitneyu  # 1.7 s to import: paid by a comparison, not by loading the code location

        p_value = float(mannwhitneyu(now, base_samples, alternative="greater").pvalue)
        significant = p_value < alpha
        regressed = worse_enough and significant
        why = (f"p95 {now_p95:.1f} ms vs {base_p95:.1f} ms, Mann-Whitney p={p_value:.3g}"
               + ("" if regressed else " (not a regression: " + ", ".join(
                   [*([] if significant else [f"not significant at {alpha}"]),
                    *([] if worse_enough else [f"within {factor}× or under the {floor_ms:.0f} ms floor"])]) + ")"))
        return Comparison(endpoint, regressed, now_p95, base_p95, p_value, why)
    why = (f"p95 {now_p95:.1f} ms vs {base_p95:.1f} ms (the baseline kept no samples: factor and floor only)")
    return Comparison(endpoint, worse_enough, now_p95, base_p95, None, why)
