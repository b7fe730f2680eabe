"""Tests for cnnzoo.experiments.verdict: the t quantiles against printed tables, and the verdict
rules on synthetic per-seed effects (a clear effect, no effect, a noisy one, a negligible one, one
below the claim)."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import pytest

from cnnzoo.experiments.verdict import (
    HELD,
    NOT_HELD,
    UNRESOLVED,
    Interval,
    decide,
    exact,
    judge,
    paired_t_interval,
    seeds_needed,
    t_quantile,
)

# Two-sided 95% (p = 0.975) and one-sided 80% quantiles of Student's t, from any printed table.
T_TABLE = [
    (1, 0.975, 12.706),
    (2, 0.975, 4.303),
    (4, 0.975, 2.776),
    (9, 0.975, 2.262),
    (30, 0.975, 2.042),
    (1, 0.8, 1.376),
    (4, 0.8, 0.941),
    (20, 0.8, 0.860),
]


@pytest.mark.parametrize("df, p, expected", T_TABLE)
def test_t_quantile_matches_the_table(df, p, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-3)


def test_t_quantile_approaches_the_normal():
    assert t_quantile(0.975, 10_000) == pytest.approx(1.95996, abs=1e-3)


def test_interval_by_hand():
    # mean 2, sd √(4/3), n 4: half-width t(0.975, 3) · sd / √4
    interval = paired_t_interval([1.0, 3.0, 1.0, 3.0])
    assert interval.mean == pytest.approx(2.0) and interval.n == 4
    assert interval.sd == pytest.approx(math.sqrt(4 / 3))
    assert interval.high - 2.0 == pytest.approx(3.18245 * math.sqrt(4 / 3) / 2, rel=1e-4)
    assert 2.0 - interval.low == pytest.approx(interval.high - 2.0)


def _draws(mean: float, sd: float, n: int, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, sd) for _ in range(n)]


def test_a_clear_effect_held():
    result = judge(
        _draws(0.02, 0.004, 5), measure="points", paper_figure="paper", paper_effect=0.014
    )
    assert result.finding == HELD and result.low > 0
    assert (
        result.seeds == 5 and 2 <= result.seeds_needed <= 5
    )  # a big effect over small noise: few seeds


def test_no_effect_inside_the_negligible_band_did_not_hold():
    result = judge(_draws(0.0, 0.001, 8), measure="points", paper_figure="paper", negligible=0.005)
    assert result.finding == NOT_HELD
    assert -0.005 <= result.low and result.high <= 0.005


def test_an_effect_on_the_other_side_did_not_hold():
    assert judge(_draws(-0.02, 0.004, 5), measure="m", paper_figure="p").finding == NOT_HELD


def test_a_noisy_effect_is_not_resolvable_and_says_how_many_seeds():
    effects = _draws(0.004, 0.012, 3)
    result = judge(effects, measure="points", paper_figure="paper", paper_effect=0.004)
    assert result.finding == UNRESOLVED and result.low < 0 < result.high
    # The normal approximation ((1.96 + 0.84)·sd/effect)² is a lower bound for the t-based answer.
    normal = ((1.95996 + 0.84162) * result.sd / 0.004) ** 2
    assert result.seeds_needed >= normal and result.seeds_needed > result.seeds


def test_an_effect_short_of_the_claimed_minimum_did_not_hold():
    # "at least twice as fast" (log 2) measured as 1.2× to 1.4×: real, but not the claim
    effects = [math.log(r) for r in (1.2, 1.3, 1.4, 1.25)]
    assert decide(paired_t_interval(effects), minimum=math.log(2)) == NOT_HELD
    assert decide(paired_t_interval(effects)) == HELD  # the direction alone did hold


def test_one_seed_is_never_resolvable():
    result = judge([0.5], measure="m", paper_figure="p", paper_effect=0.1)
    assert result.finding == UNRESOLVED and math.isnan(result.low) and result.seeds_needed is None
    assert "one seed" in result.effect_text()


def test_a_real_but_negligible_effect_does_not_hold():
    assert decide(Interval(0.002, 0.001, 0.003, 0.001, 5), negligible=0.005) == NOT_HELD


def test_failed_runs_are_left_out_of_the_interval():
    assert paired_t_interval([0.1, math.nan, 0.3]).n == 2


def test_seeds_needed_grows_with_the_spread():
    assert seeds_needed(0.01, 0.01) < seeds_needed(0.02, 0.01) < seeds_needed(0.04, 0.01)
    assert seeds_needed(0.01, None) is None and seeds_needed(math.nan, 0.01) is None
    assert seeds_needed(1.0, 1e-6) is None  # more than anyone would run


def test_exact_judgement_and_dict():
    result = exact(16.94, held=True, measure="ratio", paper_figure="16.94×")
    assert result.finding == HELD and result.seeds == 0 and result.to_dict()["mean"] == 16.94


def test_verdict_module_imports_no_torch():
    code = "import sys, cnnzoo.experiments.verdict; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
