"""Re-run the recipes and write the results table (``docs/results.md``): every figure in it comes
from here."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

from cnnzoo import files
from cnnzoo.bench.ablation import ablations_markdown
from cnnzoo.console import log_to_stderr
from cnnzoo.engine.machine import machine_name
from cnnzoo.engine.train import train
from cnnzoo.errors import ConfigError
from cnnzoo.inspect.summary import summary
from cnnzoo.models.base import parameter_count
from cnnzoo.recipes import TIERS, Recipe, list_recipes, model_settings


def _model_figures(recipe: Recipe, run_summary: dict) -> tuple[int, int]:
    """Parameters and multiply-adds per image of the model exactly as the recipe trained it."""
    from cnnzoo.engine.run import load_run

    loaded = load_run(Path(run_summary["run_dir"]))
    cfg = loaded.model.cfg
    macs = summary(loaded.model, (cfg.input_size[0], loaded.input.size,
                                  loaded.input.size)).total_macs
    return parameter_count(loaded.model), macs


def run_recipes(names: list[str] | None = None, *, seeds: int = 1,
                out_root: Path = Path("runs/bench-recipes"),
                log: Callable[[str], None] = log_to_stderr,
                step: Callable[..., None] | None = None, **overrides) -> list[dict]:
    """Train each recipe ``seeds`` times; one row per recipe with the mean and spread of its test
    accuracy. ``step`` (``TaskProgress.step``) hears each run's name, index, the number of runs
    and their time budgets, as their costs (default: a line on ``log``)."""
    recipes = [r for r in list_recipes() if names is None or r.name in names]
    missing = sorted(set(names or []) - {r.name for r in recipes})
    if missing:
        raise ConfigError(f"unknown recipes {missing}; `cnnzoo recipes` lists them")
    step = step or (lambda name, index, count, costs: log(f"recipe {name}"))
    budgets = [recipe.budget_seconds for recipe in recipes for _ in range(seeds)]
    rows = []
    for number, recipe in enumerate(recipes):
        runs = []
        for seed in range(seeds):
            step(f"{recipe.name}, seed {seed}: budget {recipe.budget_seconds:.0f} s, target "
                 f"{recipe.target_top1:.1%}", number * seeds + seed, len(budgets), budgets)
            config = recipe.train_config(seed=seed,
                                         out=str(out_root / f"{recipe.name}-seed{seed}"),
                                         **overrides)
            # re-measuring replaces the last runs
            runs.append(train(config, log=log, overwrite=True))
        params, macs = _model_figures(recipe, runs[0])
        accuracies = [r["test_top1"] for r in runs]
        seconds = [r["train_seconds"] for r in runs]
        rows.append({
            "recipe": recipe.name, "model": recipe.config["model"], "tier": recipe.tier,
                     "params": params,
            "macs_per_image": macs, "train_seconds": round(statistics.mean(seconds), 1),
            "images_per_second": round(statistics.mean(r["images_per_second"] for r in runs), 0),
            "test_top1": round(statistics.mean(accuracies), 4),
            "test_top1_spread": round(max(accuracies) - min(accuracies), 4) if seeds > 1 else None,
            "test_top1_runs": accuracies, "budget_seconds": recipe.budget_seconds,
                     "target_top1": recipe.target_top1,
            "met": all(a >= recipe.target_top1 for a in accuracies)
            and all(s <= recipe.budget_seconds * 1.05 for s in seconds),
            "seeds": seeds, "measured": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M}",
                     "config": recipe.config,
            "runtime": _runtime(runs[0]), "tuning": [r["tuning"] for r in runs],
                     "machine": _short_machine(overrides.get("device")),
            **({"overrides": overrides} if overrides else {}),
        })
    return rows


def _short_machine(device: str | None) -> str:
    """``AMD EPYC, AVX2`` or ``Intel Xeon, AMX-BF16``: the CPU (or GPU) and the instruction set that
    matters."""
    name = machine_name(device or "cpu")
    if "[" not in name:
        return name
    model, flags = name.split(" [", 1)
    best = ("AMX-BF16" if "amx_bf16" in flags else "AVX-512" if "avx512f" in flags else
            "AVX2" if "avx2" in flags else "no AVX2")
    return f"{model}, {best}"


def _runtime(run_summary: dict) -> str:
    """``bf16, channels-last, compiled``: what a run trained in, as its autotuning chose."""
    layout = "channels-last" if run_summary["channels_last"] else "NCHW"
    return f"{run_summary['precision']}, {layout}" + (
        ", compiled" if run_summary["compile"] else ""
    )


# how the table's first paragraph starts: the machine follows, up to its first ". "
WRITTEN_ON = "Last written by `cnnzoo bench recipes` on "


def results_markdown(rows: list[dict], machine: str) -> str:
    lines = [
        "# Recipe results",
        "",
        f"{WRITTEN_ON}{machine}. Each row is dated (UTC) by the run "
        "that measured it and names its machine (rows from before 2026-12-01 did not record it: "
        "they were measured on a 2-core AMD EPYC with AVX2 only); re-running some recipes "
        "replaces only their rows. Training wall time (evaluation excluded), test accuracy on the "
        "10,000 official Fashion-MNIST test images. Do not edit by hand: re-run the command.",
        "",
        "- **tier**: " + "; ".join(f"*{name}*: {text}" for name, text in TIERS.items()) + ".",
        "- **target**: the test accuracy the recipe is meant to reach; **budget**: the training "
        "wall time it may take for that, on 2 CPU cores; **met**: the target reached within the "
        "budget by every seed.",
        "- **model**, **params**: the network as the recipe trains it: a *variant* where the "
        "recipe sets builder arguments, built for the data's channels (1 for Fashion-MNIST); "
        "`cnnzoo recipes` shows the same count, and `cnnzoo list` shows it under the model where "
        "it differs from the model's default.",
        "- **runtime**: the precision and memory layout the run trained in (and whether "
        "compiled), as the autotuner measured fastest for the model on this machine "
        "(`engine/autotune.py`); its measuring counts in **train s**.",
        "",
        "| recipe | model | params | MACs/image | train s | images/s | runtime | test top-1 | "
        "target | budget s | met | measured on |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|:---:|---|",
    ]
    configs = {recipe.name: recipe.config for recipe in list_recipes()}
    for row in rows:
        accuracy = f"{row['test_top1']:.2%}"
        if row["test_top1_spread"] is not None:
            accuracy += f" (±{row['test_top1_spread'] / 2:.2%}, {row['seeds']} seeds)"
        settings = row.get("config") or {**configs.get(row["recipe"], {}), "model": row["model"]}
        lines.append(
            f"| {row['recipe']} | {model_settings(settings)} | {row['params']:,} | "
            f"{row['macs_per_image'] / 1e6:,.1f} M | {row['train_seconds']:.0f} | "
            f"{row['images_per_second']:,.0f} | {row.get('runtime', '')} | {accuracy} | "
            f"{row['target_top1']:.0%} | {row['budget_seconds']:.0f} | "
            f"{'yes' if row['met'] else 'no'} | "
            f"{row.get('measured', '')}{', ' + row['machine'] if row.get('machine') else ''} |"
        )
    return "\n".join(lines) + "\n"


def machine_description(device: str | None = None) -> str:
    """The machine the figures were measured on, with its instruction set (and the GPU, for a CUDA
    run)."""
    import os

    gpu = f"{machine_name(device)}, " if device and device.startswith("cuda") else ""
    return (f"{gpu}{os.cpu_count()} CPU cores ({machine_name('cpu')}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


# settings that say when a run is evaluated or saved, not what it learns (evaluation touches no
# random state): a row measured before one of them changed still describes its recipe
BOOKKEEPING = ("eval_every", "checkpoint_every", "snapshots")


def _what_trains(config: dict) -> dict:
    return {key: value for key, value in config.items() if key not in BOOKKEEPING}


def _still_current(row: dict, recipes: dict[str, Recipe]) -> bool:
    recipe = recipes.get(row["recipe"])
    if recipe is None:
        return False
    if "config" not in row:  # written before rows recorded their settings
        return True
    return (_what_trains(row["config"]), row["budget_seconds"], row["target_top1"]) == (
        _what_trains(recipe.config), recipe.budget_seconds, recipe.target_top1)


def write_results(rows: list[dict], path: Path, device: str | None = None) -> list[dict]:
    """Write ``path`` (markdown) and its ``.json`` twin: ``rows``, and the rows already there for
    recipes that still exist unchanged (a row records the settings it was measured with; rows
    written before that was recorded are kept). Returns every row written."""
    previous = path.with_suffix(".json")
    try:
        kept = json.loads(previous.read_text()) if previous.exists() else []
        current = {recipe.name: recipe for recipe in list_recipes()}
        merged = {row["recipe"]: row for row in kept if _still_current(row, current)}
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{previous} is not a results file written by `cnnzoo bench recipes` "
                          f"({error}); move it away and re-run the recipes") from error
    merged.update({row["recipe"]: row for row in rows})
    table = [merged[name] for name in sorted(merged)]
    path.parent.mkdir(parents=True, exist_ok=True)
    previous.write_text(json.dumps(table, indent=2) + "\n")
    render_results(path, machine_description(device))
    return table


def ablation_path(path: Path) -> Path:
    """Where ``cnnzoo bench ablation`` keeps its result beside the results table ``path``."""
    return path.with_name(f"{path.stem}-ablation.json")


def kept_ablations(path: Path) -> list[dict]:
    """The ablations kept beside the results table ``path``, newest first (a file written before
    several were kept holds one)."""
    kept = ablation_path(path)
    if not kept.exists():
        return []
    saved = json.loads(kept.read_text())
    return saved if isinstance(saved, list) else [saved]


def render_results(path: Path, machine: str | None = None) -> None:
    """Write the markdown ``path`` from its JSON twins: the recipes' rows, then the ablations (when
    any were measured). ``machine`` heads the recipes' table (default: the one it says now)."""
    table = path.with_suffix(".json")
    rows = json.loads(table.read_text()) if table.exists() else []
    if machine is None:
        machine = _machine_line(path) or machine_description()
    text = results_markdown(rows, machine)
    ablations = kept_ablations(path)
    if ablations:
        text += "\n" + ablations_markdown(ablations)
    files.atomic_write_text(path, text)


def write_ablation(result: dict, path: Path, device: str | None = None) -> None:
    """Keep ``cnnzoo bench ablation``'s ``result`` beside the results table ``path``, first, and
    re-write the table with it. It replaces an earlier ablation of the same recipe with the same
    settings and overrides whose arms it measured again (all of them): one of the recipe as it was
    before stays, as the evidence for what the recipe took up since, and so does one with arms
    this one left out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {**result, "machine": machine_description(device)}

    def measured_again(other: dict) -> bool:
        keys = ("recipe", "recipe_config", "overrides")
        same = all(other.get(key) == result[key] for key in keys)
        return same and _arm_names(other) <= _arm_names(result)

    kept = [result] + [other for other in kept_ablations(path) if not measured_again(other)]
    files.atomic_write_text(ablation_path(path), json.dumps(kept, indent=2) + "\n")
    render_results(path)


def _arm_names(ablation: dict) -> set[str]:
    return {row["arm"] for row in ablation.get("arms", [])}


def _machine_line(path: Path) -> str | None:
    """The machine the table at ``path`` names now, so that re-rendering it keeps it."""
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith(WRITTEN_ON):
            return line[len(WRITTEN_ON):].split(". Each row", 1)[0]
    return None


__all__ = ["render_results", "results_markdown", "run_recipes", "write_ablation", "write_results"]
