"""Every command's options, read from the real parser: a bad value is one line naming the option and
the value, exit 2, before anything is created; `--debug` is accepted at every level; `bench` is one
sub-command per benchmark. New commands and options are covered as they are added, because the cases
come from walking `build_parser()`."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from cnnzoo.cli import build_parser, main

BAD_NUMBERS = ("nan", "inf", "-1", str(10**12))


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, parser) for every parser reachable from ``parser``, the top one included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def _options(test):
    """(command words, option) for the options of every leaf command that ``test(action)``
    selects."""
    cases = []
    for path, parser in _commands(build_parser()):
        if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            continue
        cases += [pytest.param(path, a.option_strings[-1],
                               id=" ".join((*path, a.option_strings[-1])))
                  for a in parser._actions if a.option_strings and test(a)]
    return cases


def _is_numeric(action: argparse.Action) -> bool:
    """An option whose value is a number (or a shape of numbers), as its own type reads "1"."""
    if action.type is None or action.choices:
        return False
    try:
        value = action.type("1")
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        return False
    return isinstance(value, (int, float, tuple)) and not isinstance(value, bool)


def _refused(capsys, argv: list[str]) -> str:
    """The one line printed for a command line that argparse refuses with exit status 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


NUMERIC = _options(_is_numeric)


def test_the_walk_finds_the_numeric_options_of_nested_commands():
    found = {(" ".join(p.values[0]), p.values[1]) for p in NUMERIC}
    for case in (("bench training", "--repeats"), ("summary", "--depth"), ("train", "--seed"),
                 ("train", "--threads"), ("show neighbours", "--k"), ("serve", "--port"),
                 ("eval", "--memory-budget")):
        assert case in found


@pytest.mark.parametrize("path, option", NUMERIC)
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_every_numeric_option_refuses_nan_inf_negative_and_absurd_values(
    capsys, path, option, value
):
    err = _refused(capsys, [*path, option, value])
    assert f"argument {option}: must be" in err and repr(value) in err


@pytest.mark.parametrize("argv, option, value, allowed", [
    (["bench", "training", "--repeats", "0"], "--repeats", "0", "from 1 to 1,000"),
    (["bench", "inference", "--repeats", "0"], "--repeats", "0", "from 1 to 1,000"),
    (["summary", "lenet5", "--depth", "-2"], "--depth", "-2", "from 0 to 100"),
    (["train", "--model", "lenet5", "--epochs", "0"], "--epochs", "0", "≥ 1"),
    (["train", "--model", "lenet5", "--threads", "0"], "--threads", "0", "≥ 1"),
    (["train", "--model", "lenet5", "--seed", str(2**40)], "--seed", str(2**40), "≤ 4,294,967,295"),
    (["bench", "recipes", "--seeds", "0"], "--seeds", "0", "from 1 to 100"),
    (["serve", "--max-upload-mb", "0"], "--max-upload-mb", "0", "> 0"),
])
def test_a_value_out_of_range_names_the_option_the_value_and_what_is_allowed(
    capsys, argv, option, value, allowed
):
    err = _refused(capsys, argv)
    assert f"argument {option}" in err and repr(value) in err and allowed in err


def test_depth_zero_is_a_depth():
    assert build_parser().parse_args(["summary", "lenet5", "--depth", "0"]).depth == 0


DEVICE = _options(lambda action: "--device" in action.option_strings)


def test_every_command_that_runs_somewhere_takes_the_shared_device_option():
    assert {" ".join(p.values[0]) for p in DEVICE} >= {"train", "eval", "predict", "bench training",
                                                       "bench inference", "bench hardware",
                                                       "bench recipes"}


@pytest.mark.parametrize("path, option", DEVICE)
def test_gpu_is_refused_with_the_name_pytorch_uses(capsys, path, option):
    err = _refused(capsys, [*path, "--device", "gpu"])
    assert "argument --device" in err and "'gpu'" in err and "--device cuda" in err


@pytest.mark.parametrize("path, option", DEVICE)
def test_a_device_this_machine_lacks_is_refused(capsys, path, option):
    import torch

    # one past the last GPU, or the first where there is none
    missing = f"cuda:{torch.cuda.device_count()}"
    err = _refused(capsys, [*path, "--device", missing])
    assert (
        "argument --device" in err
        and repr(missing) in err
        and "not available" in err
        and "cpu" in err
    )


def test_eval_with_device_gpu_is_one_line_not_a_traceback(capsys, tmp_path):
    err = _refused(capsys, ["eval", str(tmp_path), "--device", "gpu"])
    assert err.startswith("cnnzoo eval: error: argument --device:")


@pytest.mark.parametrize("argv", [["train"], ["eval", "run"], ["predict", "run", "x.png"],
                                  ["bench", "hardware"]])
def test_cpu_is_a_device(argv):
    assert build_parser().parse_args([*argv, "--device", "cpu"]).device == "cpu"


@pytest.mark.parametrize("argv", [["bench", "recipes", "--recipes", "budgetnet-fast", "--epochs",
                                   "1"],
                                  ["show", "filters", "lenet5", "--layer", "conv9"]])
@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_is_accepted_before_and_after_a_nested_command(capsys, argv, where):
    from cnnzoo.errors import CnnzooError

    assert main(argv) == 2  # without --debug: one line
    with pytest.raises(CnnzooError):
        main(["--debug", *argv] if where == "before" else [*argv, "--debug"])


def test_every_command_at_every_level_takes_debug():
    for path, parser in _commands(build_parser()):
        assert "--debug" in parser._option_string_actions, path


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_bench_help_lists_each_benchmark_and_each_takes_only_its_own_options(capsys):
    listing = _help(capsys, "bench")
    for name in ("training", "inference", "hardware", "recipes", "race"):
        assert f"    {name}" in listing
    assert "--repeats" not in listing and "--peak-size" not in listing
    training = _help(capsys, "bench", "training")
    assert "--repeats" in training and "--images" in training
    for foreign in ("--race-out", "--cnnzoo-epochs", "--peak-size", "--recipes", "--results",
                    "--seeds"):
        assert foreign not in training
    race = _help(capsys, "bench", "race")
    assert "--race-out" in race and "--repeats" not in race and "--images" not in race


def test_an_option_of_another_benchmark_is_refused_by_the_benchmark_with_its_help(capsys):
    err = _refused(capsys, ["bench", "race", "--repeats", "3"])
    assert err.startswith("cnnzoo bench race: error: unrecognized arguments: --repeats 3 (")
    assert "`cnnzoo bench race --help` lists the options" in err  # not `cnnzoo --help`
    assert "did you mean" not in err  # --recipe is not what was meant


@pytest.mark.parametrize("argv, meant", [
    (["eval", "run", "--views", "flip"], "--test-views"),  # a part of the option's name
    (["predict", "run", "x.png", "--views=flip"], "--test-views"),
    (["train", "--model", "lenet5", "--epohcs", "3"], "--epochs"),  # a typo
    (["data", "list", "--jsn"], "--json"),
])
def test_an_unknown_option_is_answered_with_the_option_it_resembles(capsys, argv, meant):
    err = _refused(capsys, argv)
    assert err.startswith(f"cnnzoo {argv[0]}: error: unrecognized arguments: ")
    assert f"did you mean {meant}? (`cnnzoo {argv[0]} --help` lists the options)" in err


def test_eval_and_predict_take_test_views_as_train_does(capsys):
    for argv in (["eval", "run"], ["predict", "run", "x.png"], ["train"]):
        args = build_parser().parse_args([*argv, "--test-views", "flip"])
        assert (args.test_views if argv == ["train"] else args.views) == "flip"


DATA_DIR = _options(lambda action: "--data-dir" in action.option_strings)
OUT = _options(
    lambda action: "--out" in action.option_strings or "--race-out" in action.option_strings
)


@pytest.mark.parametrize("path, option", DATA_DIR)
def test_a_data_dir_that_is_no_folder_is_refused(capsys, tmp_path, path, option):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    for target, says in (("nowhere", "no such folder"), ("file", "not a folder"),
                         ("dangling", "broken")):
        err = _refused(capsys, [*path, "--data-dir", str(tmp_path / target)])
        assert "argument --data-dir" in err and says in err and str(tmp_path / target) in err


@pytest.mark.parametrize("path, option", OUT)
def test_an_out_that_cannot_be_written_is_refused_before_anything_is_made(
    capsys, tmp_path, path, option
):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    wants_file = option == "--out" and _out_is_a_file(path)
    cases = [("dangling", "broken"), ("file/inside", "is a file")]
    cases.append(("folder", "names a folder") if wants_file else ("file", "names a file"))
    for target, says in cases:
        err = _refused(capsys, [*path, option, str(tmp_path / target)])
        assert f"argument {option}" in err and says in err and str(tmp_path / target) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "file", "folder"]


def _out_is_a_file(path) -> bool:
    parser = dict(_commands(build_parser()))[tuple(path)]
    return parser._option_string_actions["--out"].metavar == "FILE"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_a_read_only_out_folder_is_refused_and_left_empty(capsys, tmp_path):
    read_only = tmp_path / "ro"
    read_only.mkdir(mode=0o555)
    err = _refused(capsys, ["train", "--model", "lenet5", "--out", str(read_only / "run")])
    assert "argument --out" in err and "not writable" in err and str(read_only / "run") in err
    assert list(read_only.iterdir()) == []


def test_train_writes_through_a_symlink_into_a_folder_with_spaces_and_accents(
    capsys, tmp_path, tiny_mnist_dir
):
    real = tmp_path / "résultats d'été" / "run ü"
    real.parent.mkdir()
    link = tmp_path / "lien vers ça"
    link.symlink_to(real.parent, target_is_directory=True)
    assert main(["train", "--model", "mlp", "--model-kwargs", '{"hidden": [16]}', "--dataset",
                 "mnist",
                 "--data-dir", str(tiny_mnist_dir), "--epochs", "1", "--batch-size", "100",
                 "--no-progress", "--out", str(link / "run ü"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (real / "summary.json").is_file() and summary["test_top1"] >= 0
