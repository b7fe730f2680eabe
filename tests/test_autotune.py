"""The autotuner: the choice from timings, the cache's key and its invalidation, and the decision a
run takes.

No timing is asserted: the choice is checked on synthetic timings, and real measurements only for
their form.
"""

from __future__ import annotations

import json

import pytest
import torch

from cnnzoo.data.tensors import ImageTensors
from cnnzoo.engine import autotune, tuning_cache
from cnnzoo.engine.autotune import Candidate, candidates_for, choose_fastest, compile_pays, tune
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.inputs import InputSpec
from cnnzoo.engine.machine import cpu_model_and_flags
from cnnzoo.engine.train import train
from cnnzoo.models.registry import create_model

FP32_NCHW, FP32_CL = Candidate("fp32", False), Candidate("fp32", True)
BF16_NCHW, BF16_CL = Candidate("bf16", False), Candidate("bf16", True)


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(tuning_cache.CACHE_ENV, str(tmp_path / "tuning"))
    return tmp_path / "tuning"


def test_the_fastest_candidate_is_chosen():
    # AMX-like: bf16 NCHW wins
    timings = {FP32_NCHW: 0.030, FP32_CL: 0.024, BF16_NCHW: 0.011, BF16_CL: 0.019}
    assert choose_fastest(timings) == BF16_NCHW
    # AVX2-like: emulated bf16
    timings = {FP32_NCHW: 0.030, FP32_CL: 0.041, BF16_NCHW: 0.120, BF16_CL: 0.160}
    assert choose_fastest(timings) == FP32_NCHW


def test_near_ties_go_to_the_earlier_candidate():
    # within 5%: fp32 is exact
    assert choose_fastest({FP32_NCHW: 0.0102, BF16_CL: 0.0100}) == FP32_NCHW
    assert choose_fastest({FP32_NCHW: 0.0110, BF16_CL: 0.0100}) == BF16_CL  # 10% slower: not a tie
    assert choose_fastest({FP32_NCHW: 0.0110, BF16_CL: 0.0100}, margin=0.2) == FP32_NCHW
    with pytest.raises(ValueError):
        choose_fastest({})


def test_compile_pays_only_when_the_saving_covers_the_compile():
    assert compile_pays(0.030, 0.020, compile_seconds=5.0, steps=1000)  # saves 10 s, costs 5
    assert not compile_pays(0.030, 0.020, compile_seconds=5.0, steps=400)  # saves 4 s
    # slower after compiling
    assert not compile_pays(0.020, 0.030, compile_seconds=0.0, steps=10_000)


def test_candidates_are_every_precision_and_layout_unless_forced():
    cpu = torch.device("cpu")
    assert candidates_for(cpu, "auto", None) == [FP32_NCHW, FP32_CL, BF16_NCHW, BF16_CL]
    assert candidates_for(cpu, "bf16", None) == [BF16_NCHW, BF16_CL]
    assert candidates_for(cpu, "auto", False) == [FP32_NCHW, BF16_NCHW]
    assert candidates_for(cpu, "fp32", True) == [FP32_CL]
    assert Candidate.from_label(BF16_CL.label) == BF16_CL


PARTS = {"machine": "AMD EPYC [avx, avx2, fma]", "threads": 2, "model": "lenet5_bn",
         "model_kwargs": {}, "input_side": 28, "batch_size": 256, "torch": "2.13.0+cpu"}


@pytest.mark.parametrize("part, other", [
    ("machine", "Intel(R) Xeon(R) Platinum 8480+ [amx_bf16, amx_tile, avx, avx2, avx512_bf16, "
                "fma]"),
    ("machine", "AMD EPYC [avx, avx2, avx512f, fma]"),  # same model name, other instruction set
    ("threads", 4), ("model", "lenet5"), ("model_kwargs", {"width": 0.5}), ("input_side", 32),
    ("batch_size", 512), ("torch", "2.14.0+cpu")])
def test_the_cache_misses_when_any_part_of_its_key_changes(cache_dir, part, other):
    tuning_cache.write_entry(PARTS, {"steps": {"fp32/nchw": 0.02}})
    assert tuning_cache.read_entry(dict(PARTS))["steps"] == {"fp32/nchw": 0.02}  # same parts: a hit
    assert tuning_cache.read_entry({**PARTS, part: other}) == {}


def test_a_damaged_or_foreign_cache_file_is_a_miss_and_is_rewritten(cache_dir):
    path = tuning_cache.write_entry(PARTS, {"steps": {"fp32/nchw": 0.02}})
    for damage in ("{not json", "[1, 2]",
                   json.dumps({"parts": {**PARTS, "threads": 8}, "steps": {}}), "\x00\xff"):
        path.write_text(damage)
        assert tuning_cache.read_entry(PARTS) == {}
    assert tuning_cache.write_entry(PARTS, {"steps": {"bf16/nchw": 0.01}}) == path
    assert tuning_cache.read_entry(PARTS) == {"steps": {"bf16/nchw": 0.01}}
    assert [p.name for p in cache_dir.iterdir()] == [path.name]  # no temporary file left behind
    with pytest.raises(ValueError, match="needs"):
        tuning_cache.cache_key({"model": "lenet5"})


def test_cpu_model_and_instruction_set_come_from_cpuinfo():
    cpuinfo = ("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx avx2 fma sse4_2 bmi2 "
               "amx_bf16\n")
    assert cpu_model_and_flags(cpuinfo) == ("AMD EPYC", ["amx_bf16", "avx", "avx2", "fma",
                                                         "sse4_2"])


class _FakeTimer:
    def __init__(self, per_step: float) -> None:
        self.per_step, self.steps = per_step, 0

    def seconds(self, steps: int = 1) -> float:
        self.steps += steps
        return self.per_step * steps


def test_measuring_interleaves_rounds_and_stops_timing_a_far_slower_candidate():
    timers = {"fp32/nchw": _FakeTimer(0.010), "fp32/channels-last": _FakeTimer(0.012),
              "bf16/nchw": _FakeTimer(0.100)}
    measured = autotune.measure_steps(timers, allowance=float("inf"))
    assert measured == {"fp32/nchw": 0.010, "fp32/channels-last": 0.012, "bf16/nchw": 0.100}
    full = 1 + autotune.ROUNDS * autotune.STEPS_PER_ROUND
    # 10× slower at warm-up: not timed further
    assert [t.steps for t in timers.values()] == [full, full, 1]
    short = {"a": _FakeTimer(0.010), "b": _FakeTimer(0.012)}
    # over the allowance from the start: one step each after warm-up
    autotune.measure_steps(short, allowance=0.0)
    assert [t.steps for t in short.values()] == [2, 2]


class _Clock:
    """A stand-in for the ``time`` module whose clock only the fake timers below advance."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_a_long_run_times_more_rounds_but_stays_within_its_share(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(autotune, "time", clock)

    class ClockedTimer(_FakeTimer):
        def seconds(self, steps: int = 1) -> float:
            clock.now += self.per_step * steps
            return super().seconds(steps)

    def rounds_timed(run_steps: int | None) -> int:
        clock.now = 0.0
        timers = {"a": ClockedTimer(0.010), "b": ClockedTimer(0.012)}
        autotune.measure_steps(timers, float("inf"), run_steps)
        return (timers["a"].steps - 1) // autotune.STEPS_PER_ROUND

    assert rounds_timed(None) == autotune.ROUNDS  # run length unknown: the usual rounds
    # 5% of 100,000 steps of 10 ms: room for every round
    assert rounds_timed(100_000) == autotune.MAX_ROUNDS
    between = rounds_timed(600)  # 5% of 600 steps of 10 ms is 0.3 s; a round of both takes 44 ms
    assert autotune.ROUNDS < between < autotune.MAX_ROUNDS
    assert clock.now <= autotune.TUNING_SHARE * 600 * 0.010


def _tiny_problem(batch_size: int = 16):
    torch.manual_seed(0)
    data = ImageTensors(torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8),
                        torch.randint(0, 10, (64,)))
    augment = InputSpec(size=28, mean=[0.5], std=[0.25]).train_pipeline(flip=True, pca_std=0.0)
    config = TrainConfig(model="lenet5", batch_size=batch_size, compile="off")
    return create_model("lenet5"), data, augment, config


def _tune(config, model, data, augment, steps=10_000, may_measure=True):
    return tune(model, data, augment, config=config, device=torch.device("cpu"), side=28,
                expected_steps=steps, may_measure=may_measure)


def test_a_run_takes_the_fastest_measured_candidate_then_reads_it_from_the_cache(
    cache_dir, monkeypatch
):
    # an idle machine: cached
    monkeypatch.setattr(autotune.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    model, data, augment, config = _tiny_problem()
    fake = {"fp32/nchw": 0.030, "fp32/channels-last": 0.041, "bf16/nchw": 0.012,
            "bf16/channels-last": 0.020}
    monkeypatch.setattr(autotune, "measure_steps", lambda timers, allowance,
                        run_steps: {k: fake[k] for k in timers})
    first = _tune(config, model, data, augment)
    assert (first.precision, first.channels_last, first.source) == ("bf16", False, "measured")
    assert (
        first.to_dict()["step_ms"]["bf16/nchw"] == 12.0
        and "bf16, NCHW (measured" in first.sentence()
    )

    monkeypatch.setattr(autotune, "measure_steps",
                        lambda *a: pytest.fail("measured again despite the cache"))
    second = _tune(config, model, data, augment)
    assert (second.precision, second.channels_last, second.source) == ("bf16", False, "cache")
    other_batch = TrainConfig(**{**config.to_dict(), "batch_size": 32})
    assert _tune(other_batch, model, data, augment, may_measure=False).source.startswith("default")


def test_forced_choices_measure_nothing_and_short_runs_fall_back_to_defaults(
    cache_dir, monkeypatch
):
    model, data, augment, config = _tiny_problem()
    monkeypatch.setattr(autotune, "measure_steps", lambda *a: pytest.fail("measured"))
    forced = TrainConfig(**{**config.to_dict(), "precision": "bf16", "channels_last": True})
    tuning = _tune(forced, model, data, augment)
    assert (tuning.precision, tuning.channels_last, tuning.source) == ("bf16", True, "forced")
    short = _tune(config, model, data, augment, steps=autotune.MIN_RUN_STEPS - 1)
    assert short.source == "default: run too short" and not short.channels_last
    assert not cache_dir.exists()  # nothing measured, nothing cached


def test_real_measurement_times_every_candidate_and_leaves_the_model_and_random_state_alone(
    cache_dir, monkeypatch
):
    monkeypatch.setattr(autotune, "ROUNDS", 1)
    model, data, augment, config = _tiny_problem(batch_size=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    tuning = _tune(config, model, data, augment)
    assert set(tuning.step_seconds) == {
        c.label for c in candidates_for(torch.device("cpu"), "auto", None)
    }
    assert all(s > 0 for s in tuning.step_seconds.values()) and tuning.seconds > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)


def test_compile_auto_follows_the_trial_and_is_cached(cache_dir, monkeypatch):
    model, data, augment, config = _tiny_problem()
    auto = TrainConfig(**{**config.to_dict(), "compile": "auto", "precision": "fp32",
                          "channels_last": False})
    monkeypatch.setattr(autotune, "COMPILE_TRIAL_MIN_SECONDS", 0.0)
    trial = {"eager_ms": 30.0, "compiled_ms": 20.0, "compile_s": 5.0}
    monkeypatch.setattr(autotune, "trial_compile", lambda *a: trial)
    assert _tune(auto, model, data, augment, steps=1000).compile  # saves 10 s for 5
    monkeypatch.setattr(autotune, "trial_compile",
                        lambda *a: pytest.fail("tried again despite the cache"))
    cached = _tune(auto, model, data, augment, steps=600)  # saves 6 s for 5
    assert cached.compile and cached.compile_source == "cache" and cached.compile_trial == trial
    # 400 compiled steps fit: saves 4 s for 5
    budget = TrainConfig(**{**auto.to_dict(), "time_budget": 8.0})
    assert not _tune(budget, model, data, augment, steps=600).compile
    assert not _tune(TrainConfig(**{**auto.to_dict(), "compile": "off"}), model, data,
                     augment).compile


def test_a_training_run_reports_its_choice_and_counts_the_measuring_in_its_time(
    tiny_mnist_dir, tmp_path, cache_dir, monkeypatch
):
    monkeypatch.setattr(autotune, "MIN_RUN_STEPS", 1)
    monkeypatch.setattr(autotune, "ROUNDS", 1)
    monkeypatch.setattr(autotune.os, "getloadavg", lambda: (0.5, 0.5, 0.5))  # else busy: not cached
    lines = []
    config = TrainConfig(model="lenet5", dataset="mnist", data_dir=str(tiny_mnist_dir), epochs=1,
                         batch_size=100, test_subset=100, out=str(tmp_path / "run"), compile="off")
    damaged = tuning_cache.write_entry(autotune.key_parts(config, torch.device("cpu"), 28),
                                       {"steps": {"fp32/nchw": "fast"}})
    summary = train(config, log=lines.append)
    warned = [line for line in lines if line.startswith("warning: the tuning cache file")]
    assert len(warned) == 1 and str(damaged) in warned[0]
    tuning = summary["tuning"]
    assert tuning["source"] == "measured" and len(tuning["step_ms"]) == 4
    assert (
        summary["precision"] == tuning["precision"]
        and summary["channels_last"] == tuning["channels_last"]
    )
    assert summary["train_seconds"] >= tuning["seconds"] > 0
    assert any(line.startswith("runtime: ") and "measured" in line for line in lines)
    cached = tuning_cache.read_entry(autotune.key_parts(config, torch.device("cpu"), 28))
    assert {label: round(s * 1e3, 2) for label, s in cached["steps"].items()} == tuning["step_ms"]


LABELS = ("fp32/nchw", "fp32/channels-last", "bf16/nchw", "bf16/channels-last")
GOOD_STEPS = dict(zip(LABELS, (0.030, 0.041, 0.012, 0.020), strict=True))


@pytest.mark.parametrize("damage, named", [
    ({"steps": dict.fromkeys(LABELS, float("nan"))}, "is NaN"),  # StopIteration: nothing chosen
    ({"steps": {**GOOD_STEPS, "bf16/nchw": -1}}, "steps.bf16/nchw is -1"),  # would always be chosen
    ({"steps": {**GOOD_STEPS, "fp32/nchw": True}}, "steps.fp32/nchw is true"),
    ({"steps": GOOD_STEPS, "compile": {"bf16/nchw": {"eager_ms": 30.0}}},
     "compile.bf16/nchw.compiled_ms"),
    ({"steps": GOOD_STEPS, "compile": {"bf16/nchw": {"eager_ms": 3, "compiled_ms": 0,
                                                     "compile_s": 1}}},
     "compile.bf16/nchw.compiled_ms is 0"),  # divided by
    ({"steps": GOOD_STEPS, "compile": []}, "compile is list"),
    ({"steps": ["fp32/nchw", 0.01]}, "steps is list")])
def test_a_damaged_cache_file_is_ignored_with_a_warning_and_rewritten(cache_dir, monkeypatch,
                                                                       damage, named):
    """Values no measurement gives (NaN, negative, true, a trial without its times) crashed the run
    (KeyError, StopIteration) or chose by them; now the file is ignored whole, named in a warning,
    and rewritten by the run's own measurement."""
    monkeypatch.setattr(autotune.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    monkeypatch.setattr(autotune, "COMPILE_TRIAL_MIN_SECONDS", 0.0)
    model, data, augment, config = _tiny_problem()
    auto = TrainConfig(**{**config.to_dict(), "compile": "auto"})
    parts = autotune.key_parts(auto, torch.device("cpu"), 28)
    path = tuning_cache.write_entry(parts, damage)
    trial = {"eager_ms": 30.0, "compiled_ms": 20.0, "compile_s": 5.0}
    monkeypatch.setattr(autotune, "trial_compile", lambda *a: trial)
    steady = lambda timers, allowance, run_steps: autotune.Timings(  # noqa: E731
        {k: GOOD_STEPS[k] for k in timers}, dict.fromkeys(timers, 0.0))
    monkeypatch.setattr(autotune, "measure_steps", steady)
    tuning = _tune(auto, model, data, augment)
    assert (tuning.precision, tuning.channels_last, tuning.source) == ("bf16", False, "measured")
    assert tuning.warning.startswith(f"the tuning cache file {path} is damaged")
    assert named in tuning.warning
    assert len(tuning.warning.splitlines()) == 1
    rewritten = {"steps": GOOD_STEPS, "compile": {"bf16/nchw": trial}}
    assert tuning_cache.load_entry(parts) == (rewritten, None)


def test_an_unwritable_cache_only_costs_a_measurement(tmp_path, monkeypatch):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    monkeypatch.setenv(tuning_cache.CACHE_ENV, str(blocked / "tuning"))
    assert tuning_cache.write_entry(PARTS, {"steps": {"fp32/nchw": 0.02}}) is None
    assert tuning_cache.read_entry(PARTS) == {}


class _UnsteadyTimer(_FakeTimer):
    """A candidate whose second round ran while something else took the cores."""

    def __init__(self, per_step: float) -> None:
        super().__init__(per_step)
        self.calls = 0

    def seconds(self, steps: int = 1) -> float:
        self.calls += 1
        # warm-up, round 1, round 2 ...
        return super().seconds(steps) * (3.0 if self.calls == 3 else 1.0)


def test_rounds_that_disagree_are_reported_as_unsteady():
    steady = autotune.measure_steps({"a": _FakeTimer(0.010), "b": _FakeTimer(0.012)}, float("inf"))
    assert steady.steady and steady.spread == {"a": 0.0, "b": 0.0}
    disturbed = autotune.measure_steps({"a": _FakeTimer(0.010), "b": _UnsteadyTimer(0.012)},
                                       float("inf"))
    assert not disturbed.steady and disturbed.spread["b"] == pytest.approx(2.0)
    # the median of three rounds still gives the step's time
    assert disturbed == {"a": 0.010, "b": 0.012}


@pytest.mark.parametrize("spread, load, why", [(2.0, 0.5, "rounds differ by 200%"),
                                               (0.1, 9.0, "busy (load 9.0")])
def test_a_disturbed_or_busy_measurement_is_used_but_never_cached(cache_dir, monkeypatch, spread,
                                                                  load, why):
    """Autotune measured while another training ran once cached 286 ms a step where the truth was
    7.9, and later runs used it: such a measurement now serves only the run that took it."""
    model, data, augment, config = _tiny_problem()
    fake = {"fp32/nchw": 0.030, "fp32/channels-last": 0.041, "bf16/nchw": 0.012,
            "bf16/channels-last": 0.020}
    monkeypatch.setattr(autotune.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(autotune, "measure_steps", lambda timers, allowance,
                        run_steps: autotune.Timings(
        {k: fake[k] for k in timers}, {k: spread for k in timers}))
    first = _tune(config, model, data, augment)
    assert (first.precision, first.channels_last) == ("bf16", False)  # still the run's choice
    assert first.source.startswith("measured (not cached: ") and why in first.source
    assert not cache_dir.exists() or list(cache_dir.iterdir()) == []
    measured_again = []
    monkeypatch.setattr(autotune.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    monkeypatch.setattr(autotune, "measure_steps", lambda timers, allowance,
                        run_steps: measured_again.append(1) or
                        autotune.Timings({k: fake[k] for k in timers}, {k: 0.0 for k in timers}))
    assert _tune(config, model, data, augment).source == "measured" and measured_again == [1]
    assert _tune(config, model, data, augment).source == "cache"


def test_a_resumed_run_keeps_the_precision_and_layout_it_began_in(tiny_mnist_dir, tmp_path,
                                                                   cache_dir):
    """A resume measures nothing: with the cache gone it fell back to the defaults, switching the
    run's layout half way (and, on one CPU, halving its speed)."""
    import shutil

    config = TrainConfig(model="lenet5", dataset="mnist", data_dir=str(tiny_mnist_dir), epochs=1,
                         batch_size=100, test_subset=100, out=str(tmp_path / "run"),
                         compile="off", snapshots="off")
    # the first part's choice, from the cache: fp32, channels-last (never the default layout)
    steps = dict.fromkeys(LABELS, 0.03) | {"fp32/channels-last": 0.01}
    tuning_cache.write_entry(autotune.key_parts(config, torch.device("cpu"), 28), {"steps": steps})
    first = train(config)
    assert (first["tuning"]["source"], first["precision"], first["channels_last"]) == (
        "cache", "fp32", True)
    shutil.rmtree(cache_dir)  # cleared, or the run resumed on another user's account
    resumed = train(None, resume=tmp_path / "run", overrides={"epochs": 2})
    assert resumed["epochs"] == 2 and resumed["tuning"]["source"] == "as the run began"
    assert (resumed["precision"], resumed["channels_last"]) == ("fp32", True)
