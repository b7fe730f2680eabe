"""What every experiment shares: its settings, training one arm, the results files and the verdict
dict.

An experiment trains a few *arms* (the same recipe with one thing changed, sometimes over several
seeds) with ``cnnzoo.engine.train.train``, each into ``<run dir>/arms/<label>-seed<k>/``, then
writes into its run directory ``results.csv`` (one row per arm and seed), ``results.md`` (claim,
verdict, settings, tables) and one PNG plot, and returns a JSON-able dict:

    experiment, paper, claim   what is checked and where the claim comes from
    finding                    "held", "did not hold" or "not resolvable at this budget"
                               (see verdict.py)
    held                       finding == "held"
    effects                    per part of the claim, the effect over seeds: measure, mean, low,
                               high, sd, seeds, seeds_needed, paper_effect, paper_figure, minimum,
                               negligible, method
    verdict                    one or two sentences with the measured numbers
    quick                      True for the seconds-long smoke version, whose numbers are not
                               evidence
    settings                   the training settings used (shared by every arm unless the rows say
                               otherwise)
    summary                    the experiment's own measurements (means, ratios, ...)
    rows                       the rows of results.csv
    run_dir, results_csv, results_md, plot, seconds
"""

from __future__ import annotations

import csv
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnnzoo.console import Log, log_to_stderr, to_jsonable
from cnnzoo.errors import ConfigError
from cnnzoo.experiments.verdict import HELD, Judgement
from cnnzoo.experiments.verdict import combine as combine_findings
from cnnzoo.rundir import timestamped_run_dir

RESULT_KEYS = ("experiment", "paper", "claim", "finding", "held", "effects", "verdict", "quick",
               "settings", "summary", "rows", "run_dir", "results_csv", "results_md", "plot",
               "seconds")
VERDICT_RULES = (
    "*How the verdict is read:* the effect is measured per seed (the seed pairs the arms: same "
    "subset, same data order) and its mean gets a 95% paired t-interval. Held: the interval lies "
    "above the claim's minimum effect; did not hold: it lies below it, or inside the negligible "
    "band; not resolvable: it straddles the minimum (or one seed ran). Seeds needed: the smallest "
    "n for which a paired t-test at 95% would find the paper's effect with 80% power, given the "
    "spread measured here.")


@dataclass
class ExperimentSettings:
    """How to run an experiment: the full version or the quick smoke test, how many seeds, where."""

    run_dir: Path
    quick: bool = False
    seeds: int | None = None  # None: the experiment's own default
    data_dir: str | None = None
    log: Log = log_to_stderr
    budget: float | None = None  # minutes the full run may take: it sets the seeds, unless --seeds

    def seed_list(self, default: int, minutes_per_seed: float | None = None) -> list[int]:
        """Seeds 0..n-1: --seeds if given, else as many as --budget allows (at least 2, for an
        interval), else the experiment's default; one in quick mode. The plan is logged up front
        with its time."""
        if self.seeds is not None:
            count = self.seeds
        elif self.quick:
            count = 1
        elif self.budget is not None and minutes_per_seed:
            count = max(2, int(self.budget // minutes_per_seed))
        else:
            count = default
        if count < 1:
            raise ConfigError(f"seeds must be ≥ 1; got {count}")
        if minutes_per_seed and not self.quick:
            from cnnzoo.task_progress import duration

            self.log(f"{count} seed(s), about {duration(count * minutes_per_seed * 60)} "
                     f"({minutes_per_seed:g} min per seed, as measured on 2 CPU cores; another "
                     "CPU differs, and the time left is logged after each run; --budget MINUTES "
                     "or --seeds N to choose)")
        return list(range(count))


def default_run_dir(name: str) -> Path:
    return timestamped_run_dir(f"experiment-{name}")


# ---- training one arm ----------------------------------------------------------------------------


CHANCE_ERROR = 0.9  # ten classes, as every experiment's Fashion-MNIST has


@dataclass
class ArmRun:
    """One finished (or diverged) training run of one arm and seed."""

    label: str
    seed: int
    summary: dict  # train()'s summary; empty when the run diverged
    history: list[dict] = field(default_factory=list)  # metrics.csv rows, one per epoch
    diverged: bool = False

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}

    @property
    def test_top1(self) -> float:
        return self.summary.get("test_top1", math.nan)

    @property
    def train_top1(self) -> float:
        return self.final.get("train_top1", math.nan)

    @property
    def final_train_error(self) -> float:
        """The last epoch's training error; chance for a run that diverged or recorded none."""
        top1 = self.train_top1
        return CHANCE_ERROR if self.diverged or math.isnan(top1) else 1.0 - top1

    @property
    def train_seconds(self) -> float:
        return sum(row["epoch_seconds"] for row in self.history)


def train_arm(settings: ExperimentSettings, label: str, seed: int, config_fields: dict, *,
              position: str = "") -> ArmRun:
    """Train one arm with ``TrainConfig(**config_fields, seed=seed)`` into
    ``arms/<label>-seed<seed>``.

    A run whose loss turns NaN is recorded as diverged (that is a result too: e.g. a deep plain net
    at a rate its residual twin takes) instead of ending the experiment.

    Every arm trains in fp32 unless its fields say otherwise: the autotuner picks per model (bf16
    for lenet5_bn and fp32 for lenet5 on one CPU, say), which would change two things at once, and
    the verdicts would depend on the CPU they ran on.
    """
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train
    from cnnzoo.errors import NonFiniteLossError
    from cnnzoo.rundir import read_metrics

    out = settings.run_dir / "arms" / f"{label}-seed{seed}"
    fields = {"precision": "fp32", **config_fields}
    config = TrainConfig(**fields, seed=seed, data_dir=settings.data_dir, out=str(out))
    settings.log(
        f"{position}{label}, seed {seed}: {config.model} {config.model_kwargs or ''}".rstrip()
    )
    try:
        summary = train(config, overwrite=True, log=lambda message: settings.log(f"    {message}"))
    except NonFiniteLossError as error:
        settings.log(f"    diverged: {error}")
        return ArmRun(label, seed, {}, read_metrics(out), diverged=True)
    return ArmRun(label, seed, summary, read_metrics(out))


def train_arms(settings: ExperimentSettings, name: str, seeds: Sequence[int],
               arms: dict[str, dict]) -> dict[str, list[ArmRun]]:
    """Train every arm (label → TrainConfig fields) with every seed, seed by seed, numbering the
    runs in the log."""
    runs: dict[str, list[ArmRun]] = {label: [] for label in arms}
    total = len(seeds) * len(arms)
    started = time.perf_counter()
    for seed in seeds:
        for label, config_fields in arms.items():
            done = sum(len(arm_runs) for arm_runs in runs.values())
            position = f"[{name} {done + 1}/{total}{_time_left(started, done, total)}] "
            runs[label].append(train_arm(settings, label, seed, config_fields, position=position))
    return runs


def _time_left(started: float, done: int, total: int) -> str:
    """``, about 4 min 10 s left``, at the pace of the runs this experiment has finished (none yet:
    nothing, rather than a guess)."""
    from cnnzoo.task_progress import duration

    if done == 0:
        return ""
    return f", about {duration((time.perf_counter() - started) / done * (total - done))} left"


# ---- numbers -------------------------------------------------------------------------------------


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); NaNs are left out."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0


def pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.{digits}f}%"


def rounded(value, digits: int = 5):
    return round(value, digits) if isinstance(value, float) and not math.isnan(value) else value


# ---- results files -------------------------------------------------------------------------------


def markdown_table(rows: Sequence[dict]) -> str:
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(column)) for column in columns) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|")  # a bare | would end the cell


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(
            {key: "" if value is None else value for key, value in row.items()} for row in rows
        )


@dataclass
class Outcome:
    """What an experiment found, before it is written out."""

    name: str
    title: str
    paper: str
    claim: str
    judgements: list[Judgement]  # per part of the claim: effect over seeds, interval, finding
    verdict: str  # the measured numbers in a sentence or two
    settings: dict
    summary: dict
    rows: list[dict]
    figure: object  # a matplotlib Figure
    # extra tables for results.md, by heading
    tables: dict[str, list[dict]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # extra paragraphs for results.md


    @property
    def finding(self) -> str:
        return combine_findings([j.finding for j in self.judgements])


def verdict_rows(outcome: Outcome) -> list[dict]:
    """The table that heads results.md: the paper's figure beside ours, and what they support."""
    rows = []
    for j in outcome.judgements:
        needed = "n/a: the paper's figure is in another unit" if j.paper_effect is None else (
            "> 10,000" if j.seeds_needed is None else j.seeds_needed)
        rows.append({"claim": j.claim or outcome.claim, "paper figure": j.paper_figure,
                     "measure": j.measure, "our effect, mean [95% interval]": j.effect_text(),
                     "seeds run": j.seeds,
                     "seeds needed for the paper's effect": needed if j.seeds else "—",
                     "verdict": j.finding})
    return rows


def finish(outcome: Outcome, settings: ExperimentSettings, started: float) -> dict:
    """Write results.csv, results.md and plot.png into the run directory and return the result
    dict."""
    run_dir = settings.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = [{key: rounded(value) for key, value in row.items()} for row in outcome.rows]
    csv_path, md_path, plot_path = (
        run_dir / "results.csv",
        run_dir / "results.md",
        run_dir / "plot.png",
    )
    write_csv(csv_path, rows)
    outcome.figure.savefig(plot_path, dpi=110)
    finding = outcome.finding
    lines = [f"# {outcome.title}", "", f"**Paper:** {outcome.paper}", "",
             f"**Claim:** {outcome.claim}", "", f"**Result: {finding}.** {outcome.verdict}", "",
             markdown_table(verdict_rows(outcome)), "",
             VERDICT_RULES, ""]
    if settings.quick:
        lines += ["*Quick mode: a few hundred images for an epoch or two, to test the plumbing; "
                  "these numbers are not evidence either way.*", ""]
    lines += [*(f"{note}\n" for note in outcome.notes)]
    lines += ["## Settings", "", markdown_table([{"setting": k, "value": _setting_text(k, v)}
                                                 for k, v in outcome.settings.items()]), ""]
    for heading, table in outcome.tables.items():
        lines += [f"## {heading}", "", markdown_table(table), ""]
    lines += ["## Runs", "", markdown_table(rows), "", f"![plot]({plot_path.name})", ""]
    md_path.write_text("\n".join(lines))
    seconds = round(time.perf_counter() - started, 1)
    settings.log(f"{outcome.name}: {finding}; done in {seconds:.0f} s; results in {md_path}")
    return {
        "experiment": outcome.name, "paper": outcome.paper, "claim": outcome.claim,
        "finding": finding, "held": finding == HELD,
        "effects": to_jsonable([j.to_dict() for j in outcome.judgements]),
        "verdict": outcome.verdict, "quick": settings.quick,
            "settings": to_jsonable(outcome.settings),
        "summary": to_jsonable(outcome.summary), "rows": to_jsonable(rows), "run_dir": str(run_dir),
        "results_csv": str(csv_path), "results_md": str(md_path), "plot": str(plot_path),
            "seconds": seconds,
    }


def _setting_text(key: str, value) -> str:
    if key.endswith("_subset") and value is None:
        return "all"
    return (
        ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
    )
