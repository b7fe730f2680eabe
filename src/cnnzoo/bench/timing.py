"""Timing helpers: interleaved repeats, so slow drifts of a shared machine hit both sides alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def best_rate(run: Callable[[], int], repeats: int) -> list[float]:
    """Items per second of ``run`` (which returns how many items it processed), one figure per repeat."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        items = run()
        rates.append(items / (time.perf_counter() - start))
    return rates


def compare(baseline: Callable[[], int], candidate: Callable[[], int], repeats: int = 3) -> dict:
    """Interleave ``repeats`` timed runs of each side (after one untimed warm-up each); report medians and ratio."""
    baseline()
    candidate()
    base_rates, cand_rates = [], []
    for _ in range(repeats):
        base_rates += best_rate(baseline, 1)
        cand_rates += best_rate(candidate, 1)
    base, cand = statistics.median(base_rates), statistics.median(cand_rates)
    return {"baseline_per_second": round(base, 1), "cnnzoo_per_second": round(cand, 1),
            "ratio": round(cand / base, 2), "baseline_runs": [round(r, 1) for r in base_rates],
            "cnnzoo_runs": [round(r, 1) for r in cand_rates]}
