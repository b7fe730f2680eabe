"""Deciding whether a claim held, from a confidence interval of the effect over seeds (no torch).

An experiment measures one *effect* per seed, oriented so that a positive value is what the paper
claims (e.g. test accuracy with LRN minus without; the log of tanh's epochs over ReLU's). Seeds pair
the arms: the same seed draws the same training subset and data order for every arm, so the effect
of seed k is a difference within a pair, and its mean over seeds gets a paired Student-t interval
with n − 1 degrees of freedom. ``decide`` then reads the interval, never the point estimate:

    1. the interval lies inside the negligible band [−negligible, +negligible]  -> "did not hold"
    2. its lower end lies above the claim's minimum effect (0: a direction only) -> "held"
    3. its upper end lies below that minimum (the other side of the claim)      -> "did not hold"
    4. otherwise it straddles the minimum                                       -> "not resolvable"

Rule 1 comes first so that a real but negligible effect is not counted as the claim. With fewer than
two seeds there is no spread, hence no interval, and the verdict is "not resolvable".

``seeds_needed`` says how many seeds the paper's own effect size would need here, given the spread
measured: the smallest n for which the half-width of a paired t-interval plus a t-margin for 80%
power, (t[1 − α/2, n − 1] + t[power, n − 1]) · sd / √n, fits inside the paper's effect. This is the
t-based form of n ≈ ((z[1 − α/2] + z[power]) · sd / effect)²; with the t quantiles it never answers
fewer than 2 seeds, and it answers more than the normal form for small n, as it should.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

HELD = "held"
NOT_HELD = "did not hold"
UNRESOLVED = "not resolvable at this budget"
FINDINGS = (HELD, NOT_HELD, UNRESOLVED)
LEVEL = 0.95  # two-sided confidence of every interval
POWER = 0.8  # for seeds_needed
MAX_SEEDS = 10_000  # seeds_needed gives up (None) beyond this


def t_cdf_two_sided(t: float, df: int) -> float:
    """P(|T| ≤ t) for Student's t with an integer ``df`` ≥ 1, in closed form (Abramowitz & Stegun
    26.7.3–4)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be ≥ 1; got {df}")
    theta = math.atan(abs(t) / math.sqrt(df))
    cos2, sin = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 0:  # sinθ · (1 + ½cos²θ + (1·3)/(2·4)cos⁴θ + ...), df/2 terms
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= cos2 * (2 * k - 1) / (2 * k)
            total += term
        return sin * total
    # odd: (2/π)(θ + sinθ cosθ (1 + (2/3)cos²θ + (2·4)/(3·5)cos⁴θ + ...)), (df − 1)/2 terms after θ
    if df == 1:
        return 2 * theta / math.pi
    term, total = 1.0, 1.0
    for k in range(1, (df - 1) // 2):
        term *= cos2 * (2 * k) / (2 * k + 1)
        total += term
    return 2 / math.pi * (theta + sin * math.cos(theta) * total)


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t with ``df`` degrees of freedom, by
    bisection."""
    if not 0.5 < p < 1:
        raise ValueError(f"p must lie in (0.5, 1); got {p}")
    if df > 1000:  # the closed form costs O(df); the first Cornish-Fisher term is good to ~1e-5
        z = NormalDist().inv_cdf(p)
        return z + (z**3 + z) / (4 * df)
    target, low, high = 2 * p - 1, 0.0, 1.0
    while t_cdf_two_sided(high, df) < target:
        high *= 2
    for _ in range(100):  # 100 halvings: far below float precision
        middle = (low + high) / 2
        low, high = (middle, high) if t_cdf_two_sided(middle, df) < target else (low, middle)
    return (low + high) / 2


@dataclass(frozen=True)
class Interval:
    """Mean of the per-seed effects and its two-sided confidence interval (NaN ends with fewer
    than 2 seeds)."""

    mean: float
    low: float
    high: float
    sd: float  # sample standard deviation of the per-seed effects
    n: int
    level: float = LEVEL


def paired_t_interval(effects: Sequence[float], level: float = LEVEL) -> Interval:
    """Student-t interval of the mean of per-seed effects; NaN effects (failed runs) are left
    out."""
    values = [float(v) for v in effects if not math.isnan(v)]
    if not values:
        return Interval(math.nan, math.nan, math.nan, math.nan, 0, level)
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Interval(mean, math.nan, math.nan, math.nan, 1, level)
    sd = statistics.stdev(values)
    half = t_quantile(0.5 + level / 2, len(values) - 1) * sd / math.sqrt(len(values))
    return Interval(mean, mean - half, mean + half, sd, len(values), level)


def decide(interval: Interval, *, minimum: float = 0.0, negligible: float = 0.0) -> str:
    """The finding (HELD, NOT_HELD or UNRESOLVED) that the interval supports; the rules are in the
    docstring."""
    if interval.n < 2 or math.isnan(interval.low):
        return UNRESOLVED
    if -negligible <= interval.low and interval.high <= negligible:
        return NOT_HELD
    if interval.low > minimum:
        return HELD
    if interval.high < minimum:
        return NOT_HELD
    return UNRESOLVED


def seeds_needed(
    sd: float, effect: float | None, *, level: float = LEVEL, power: float = POWER
) -> int | None:
    """Seeds for a paired t-test at ``level`` to detect ``effect`` with ``power``, given the
    per-seed spread ``sd``.

    None when the effect or the spread is unknown, or when more than MAX_SEEDS would be needed.
    """
    if effect is None or math.isnan(sd) or effect == 0:
        return None
    if sd == 0:
        return 2
    z = NormalDist().inv_cdf(0.5 + level / 2) + NormalDist().inv_cdf(power)
    # the normal form's answer: a lower bound of the t-based one
    start = max(2, math.ceil((z * sd / effect) ** 2))
    if start > MAX_SEEDS:
        return None
    for n in range(start, MAX_SEEDS + 1):
        margin = (t_quantile(0.5 + level / 2, n - 1) + t_quantile(power, n - 1)) * sd / math.sqrt(n)
        if margin <= abs(effect):
            return n
    return None


@dataclass(frozen=True)
class Judgement:
    """Everything a results table and the JSON summary say about the effect and the verdict."""

    finding: str  # HELD, NOT_HELD or UNRESOLVED
    measure: str  # what the effect is, with its unit, e.g. "test top-1, LRN − no LRN (points)"
    mean: float
    low: float
    high: float
    sd: float
    seeds: int
    seeds_needed: int | None  # for the paper's effect size, at the spread measured here
    paper_effect: float | None  # the paper's effect in the same unit, when it translates
    paper_figure: str  # the paper's own number, in words, with its source
    minimum: float = 0.0
    negligible: float = 0.0
    claim: str = ""  # which part of the claim, when an experiment checks several
    method: str = f"paired t-interval over seeds, {LEVEL:.0%}"

    def to_dict(self) -> dict:
        return asdict(self)

    def effect_text(self, scale: float = 1.0, digits: int = 2) -> str:
        """'+1.23 [+0.40, +2.06]', the mean and interval times ``scale``."""
        if math.isnan(self.mean):
            return "n/a"
        if self.seeds == 0:
            return f"{scale * self.mean:.{digits}f} (exact)"
        if math.isnan(self.low):
            return f"{scale * self.mean:+.{digits}f} (one seed: no interval)"
        return (
            f"{scale * self.mean:+.{digits}f} [{scale * self.low:+.{digits}f}, "
            f"{scale * self.high:+.{digits}f}]"
        )


def judge(
    effects: Sequence[float],
    *,
    measure: str,
    paper_figure: str,
    paper_effect: float | None = None,
    minimum: float = 0.0,
    negligible: float = 0.0,
    claim: str = "",
) -> Judgement:
    """Interval, finding and seeds needed for per-seed ``effects`` (positive = the claimed
    direction)."""
    interval = paired_t_interval(effects)
    return Judgement(
        finding=decide(interval, minimum=minimum, negligible=negligible),
        measure=measure,
        mean=interval.mean,
        low=interval.low,
        high=interval.high,
        sd=interval.sd,
        seeds=interval.n,
        seeds_needed=seeds_needed(interval.sd, paper_effect),
        paper_effect=paper_effect,
        paper_figure=paper_figure,
        minimum=minimum,
        negligible=negligible,
        claim=claim,
    )


def combine(findings: Sequence[str]) -> str:
    """A claim made of parts holds when every part held; it did not when any part did not; else
    unresolved."""
    if all(f == HELD for f in findings):
        return HELD
    return NOT_HELD if NOT_HELD in findings else UNRESOLVED


def exact(value: float, *, held: bool, measure: str, paper_figure: str) -> Judgement:
    """A judgement of a count or another deterministic measurement: no seeds, no interval."""
    return Judgement(
        finding=HELD if held else NOT_HELD,
        measure=measure,
        mean=value,
        low=value,
        high=value,
        sd=0.0,
        seeds=0,
        seeds_needed=None,
        paper_effect=None,
        paper_figure=paper_figure,
        method="exact count (no training)",
    )
