"""The regression rule on its own: an oracle written from its words (significance, factor, floor)."""

from __future__ import annotations

import random

from ops_project.releases.compare import compare, p95


def samples(centre: float, spread: float, n: int = 60, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [max(0.1, rng.gauss(centre, spread)) for _ in range(n)]


def test_noise_alone_is_never_a_regression():
    for seed in range(20):
        base, now = samples(10, 3, seed=seed), samples(10, 3, seed=seed + 100)
        assert not compare("/x", now, base, p95(base), factor=1.5, floor_ms=20, alpha=0.01).regressed


def test_a_small_absolute_difference_is_under_the_floor():
    base, now = samples(2, 0.2), samples(6, 0.2, seed=2)  # three times slower, but by 4 ms
    result = compare("/x", now, base, p95(base), factor=1.5, floor_ms=20, alpha=0.01)
    assert not result.regressed and result.p_value is not None and result.p_value < 0.01


def test_a_large_significant_slowdown_is_a_regression():
    base, now = samples(10, 2), samples(60, 5, seed=3)
    result = compare("/x", now, base, p95(base), factor=1.5, floor_ms=20, alpha=0.01)
    assert result.regressed and "Mann-Whitney" in result.reason


def test_one_slow_outlier_does_not_convict():
    base = samples(10, 1)
    now = samples(10, 1, seed=4)
    now[-4:] = [300.0, 310.0, 320.0, 330.0]  # four hiccups push p95 up; the distribution is the same
    result = compare("/x", now, base, p95(base), factor=1.5, floor_ms=20, alpha=0.01)
    assert p95(now) > 1.5 * p95(base) and not result.regressed


def test_without_baseline_samples_only_factor_and_floor_apply():
    now = samples(60, 5)
    assert compare("/x", now, None, 10.0, factor=1.5, floor_ms=20, alpha=0.01).regressed
    assert not compare("/x", samples(12, 1), None, 10.0, factor=1.5, floor_ms=20, alpha=0.01).regressed
