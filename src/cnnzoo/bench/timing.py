"""Timing helpers: interleaved repeats, so slow drifts of a shared machine hit both sides alike."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from cnnzoo.engine.tuning_cache import busier_than_cores


def rates_per_second(run: Callable[[], int], repeats: int) -> list[float]:
    """Items per second of ``run`` (which returns how many items it processed), one figure per
    repeat."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        items = run()
        rates.append(items / (time.perf_counter() - start))
    return rates


def compare_each(baselines: dict[str, Callable[[], int]], candidate: Callable[[], int],
                 repeats: int = 3) -> dict[str, dict]:
    """Interleave ``repeats`` timed runs of every baseline and of the candidate (after one untimed
    warm-up each), so all of them share one measurement of the candidate; per baseline: medians and
    ratio."""
    for run in (*baselines.values(), candidate):
        run()
    base_rates: dict[str, list[float]] = {name: [] for name in baselines}
    cand_rates: list[float] = []
    for _ in range(repeats):
        for name, run in baselines.items():
            base_rates[name] += rates_per_second(run, 1)
        cand_rates += rates_per_second(candidate, 1)
    cand = statistics.median(cand_rates)
    results = {}
    for name, rates in base_rates.items():
        base = statistics.median(rates)
        results[name] = {"baseline_per_second": round(base, 1), "cnnzoo_per_second": round(cand, 1),
                         "ratio": round(cand / base, 2),
                         "baseline_runs": [round(r, 1) for r in rates],
                         "cnnzoo_runs": [round(r, 1) for r in cand_rates]}
    return results


def compare(baseline: Callable[[], int], candidate: Callable[[], int], repeats: int = 3) -> dict:
    """One baseline against the candidate: medians of interleaved repeats, and their ratio."""
    return compare_each({"baseline": baseline}, candidate, repeats)["baseline"]


def interleaved_seconds(runs: dict[str, Callable[[], object]], repeats: int = 3
                        ) -> dict[str, list[float]]:
    """Seconds per call of every run, ``repeats`` rounds each calling every run once (after one
    untimed call each), so that a drift of a shared machine hits all of them alike."""
    for run in runs.values():
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def caution(repeats: int | None) -> list[str]:
    """Why these figures should not be reported as they are: a single timed run per side, or a
    machine busier than its cores while they were taken (the one-minute load, this benchmark's own
    threads and data workers included; past it the autotuner does not cache a timing)."""
    said = []
    if repeats == 1:
        said.append("one timed run per side, a single sample each: --repeats 3 or more for "
                    "figures to report")
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if busier_than_cores(load, cores):
        said.append(f"the machine was busier than its cores (load {load:.1f} on {cores}): "
                    "what else ran slowed the timings, and not always both sides alike; run it "
                    "again with nothing else busy")
    return said
