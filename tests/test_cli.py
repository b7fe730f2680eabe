"""The command line: JSON output for scripts, and one clear message (no traceback) for each user
error."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cnnzoo.cli import main
from cnnzoo.engine.config import variant_name


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_json_has_params_and_input_size(capsys):
    code, out, _ = run(capsys, "list", "lenet5*", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0 and set(rows) == {"lenet5", "lenet5_1998", "lenet5_bn"}
    assert rows["lenet5_1998"]["params"] == 60_000 and rows["lenet5_1998"]["input_size"] == [
        1,
        32,
        32,
    ]


def test_summary_json_matches_the_documented_shape(capsys):
    code, out, _ = run(capsys, "summary", "lenet5", "--input-size", "1,32,32", "--num-classes",
                       "7", "--json")
    data = json.loads(out)
    assert code == 0 and data["model"] == "lenet5" and data["input_size"] == [1, 32, 32]
    assert data["layers"][-1]["output_shape"] == [7]


def test_summary_of_a_variant_counts_the_network_a_recipe_trains(capsys):
    from cnnzoo.recipes import load_recipe

    config = load_recipe("budgetnet-strong").config
    code, out, _ = run(capsys, "summary", config["model"], "--model-kwargs",
                       json.dumps(config["model_kwargs"]), "--json")
    plain = json.loads(run(capsys, "summary", config["model"], "--json")[1])
    variant = json.loads(out)
    assert code == 0 and variant["total_params"] != plain["total_params"]
    # the JSON says what it was built with, as a run's config.json does; the table is headed by it
    assert variant["model_kwargs"] == config["model_kwargs"] and plain["model_kwargs"] == {}
    table = run(capsys, "summary", config["model"], "--model-kwargs",
                json.dumps(config["model_kwargs"]))[1]
    assert table.startswith(variant_name(config["model"], config["model_kwargs"]) + "  input")
    code, out, _ = run(capsys, "recipes", "--json")
    recipe = next(row for row in json.loads(out) if row["name"] == "budgetnet-strong")
    assert recipe["params"] == variant["trainable_params"]


def test_a_misspelt_name_is_offered_the_closest_names_whatever_their_case(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--model", "lenet6", "--out", str(tmp_path / "r"))
    assert code == 2 and "Did you mean lenet5, " in err
    assert "46 models; nothing of it was kept" in err  # one sentence runs on, no ".;"
    assert "Did you mean lenet5, " in run(capsys, "summary", "LeNet5")[2]
    err = run(capsys, "train", "--model", "lenet5", "--dataset", "fmnist", "--out",
              str(tmp_path / "r"))[2]
    assert "Did you mean mnist, fashion-mnist?" in err


def test_data_list_says_where_it_looked_for_what_it_did_not_find(capsys, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, out, _ = run(capsys, "data", "list")
    line = next(line for line in out.splitlines() if line.startswith("cifar10 "))
    assert code == 0 and "not found (looked in " in line and str(tmp_path / "cache") in line


def test_one_recipe_shows_every_setting_as_the_train_option_that_sets_it(capsys):
    import shlex

    from cnnzoo.recipes import load_recipe

    config = load_recipe("budgetnet-best").config
    code, out, _ = run(capsys, "recipes", "budgetnet-best")
    assert code == 0 and out.startswith("budgetnet-best: The budget network")
    shown = [line.strip() for line in out.splitlines() if line.startswith("  --")]
    assert len(shown) == len(config)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    train_help = capsys.readouterr().out
    for line in shown:
        option, *value = shlex.split(line)
        assert option in train_help, option  # each is an option of `cnnzoo train`
        key = option[2:].replace("-", "_")
        expected = config[key]
        if isinstance(expected, dict):
            assert json.loads(value[0]) == expected
        elif expected is not True:
            assert value == [str(expected)], line
    assert json.loads(run(capsys, "recipes", "budgetnet-best", "--json")[1])["config"] == config


def test_a_summary_at_depth_0_is_one_row_for_the_whole_model(capsys):
    code, out, _ = run(capsys, "summary", "lenet5", "--depth", "0", "--json")
    assert code == 0
    [row] = json.loads(out)["layers"]  # it had no name at all
    assert row["name"] == "(whole model)" and row["params"] == json.loads(out)["total_params"]
    table = run(capsys, "summary", "budgetnet_l", "--model-kwargs", '{"depths": [2, 1, 1]}',
                "--depth", "0")[1]
    assert table.splitlines()[3].startswith("(whole model) ")


def test_summary_json_has_the_rows_of_the_table_at_its_depth(capsys):
    stages = json.loads(run(capsys, "summary", "resnet50", "--depth", "1", "--json")[1])
    table = run(capsys, "summary", "resnet50", "--depth", "1")[1].splitlines()[3:-3]
    assert [row["name"] for row in stages["layers"]] == [line.split()[0] for line in table]
    assert len(table) == 7  # the stem, four stages, the pool and fc
    assert sum(row["params"] for row in stages["layers"]) == stages["total_params"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["summary", "resnt18"], "Did you mean resnet18"),
        (["summary", "budgetnet_l", "--model-kwargs", '{"depht": [2, 1, 1]}'],
         "budgetnet_l has no setting depht; its settings (with their defaults) are widths ((64, "
         "128, 256)), depths ((1, 1, 1)), full_resolution (False)"),
        (["summary", "budgetnet_l", "--model-kwargs", '{"widths": "x"}'], "widths must be three"),
        (["summary", "vgg16", "--model-kwargs", '{"dropout": [1, 2]}'],
         "vgg16 cannot be built with {'dropout': [1, 2]} ("),
        (["summary", "vgg16", "--model-kwargs", '{"pretrained": true}'],
         "ships no pretrained weights"),
        (["train", "--model", "lenet5", "--model-kwargs", '{"pretrained": true}'],
         "ships no pretrained weights"),
        (["summary", "alexnet_2012", "--input-size", "3,64,64"], "227×227"),
        (["summary", "vgg16", "--input-size", "3,16,16"], "at least 32×32"),
        (["train", "--model", "lenet5", "--dataset", "imagenet", "--out", "{tmp}/r"], "imagenet"),
        (["train", "--model", "lenet5", "--dataset", "mnist", "--data-dir", "{tmp}/empty", "--out",
          "{tmp}/r"],
         "train-images-idx3-ubyte"),
        (["train", "--model", "lenet5", "--optimizer", "rmsprop"], "optimizer must be one of"),
        (["train"], "--model NAME"),
        (["data", "verify", "folder:{tmp}"], "a folder of your own has no published files"),
        (["data", "list", "mnist"], "data list takes no NAME (got 'mnist')"),
        (["eval", "{tmp}/no-such-run"], "no-such-run: no such run directory or checkpoint file; "
                                        "give a folder that `cnnzoo train --out` made"),
        (["predict", "{tmp}/no-such-run", "x.png"], "no-such-run: no such run directory"),
    ],
)
def test_user_errors_print_one_message_and_exit_2(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.setenv("CNNZOO_DATA", str(tmp_path / "nothing-here"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "empty").mkdir()
    code, out, err = run(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert code == 2
    assert message in err and "Traceback" not in err and out == ""


def test_bad_image_and_json_outputs_of_train_eval_predict(capsys, tmp_path, tiny_mnist_dir):
    out_dir = tmp_path / "run"
    code, out, _ = run(capsys, "train", "--model", "convnet", "--dataset", "mnist", "--data-dir",
                       str(tiny_mnist_dir),
                       "--epochs", "1", "--batch-size", "50", "--out", str(out_dir), "--json",
                       "--no-progress")
    summary = json.loads(out)
    assert code == 0 and summary["epochs"] == 1 and summary["run_dir"] == str(out_dir)

    code, out, _ = run(capsys, "eval", str(out_dir), "--data-dir", str(tiny_mnist_dir),
                       "--test-views", "flip", "--json")
    report = json.loads(out)
    assert code == 0 and report["images"] == 200 and {"top1", "top5"} <= set(report)

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really an image")
    code, out, err = run(capsys, "predict", str(out_dir), str(broken), "--json")
    assert code == 2 and "broken.png" in err and out == ""


def test_help_explains_every_training_option():
    result = subprocess.run([sys.executable, "-m", "cnnzoo", "train", "--help"],
                            capture_output=True, text=True, check=True)
    for option in ("--time-budget", "--precision", "--test-views", "--resume", "--recipe",
                   "--label-smoothing"):
        assert option in result.stdout
    assert "default: onecycle" in result.stdout


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(Exception, match="resnt18"):
        main(["--debug", "summary", "resnt18"])


def test_data_verify_flags_files_that_are_not_the_official_ones(capsys, tiny_mnist_dir):
    # the generated files parse, but their checksums are not MNIST's
    code, out, _ = run(capsys, "data", "verify", "mnist", "--data-dir", str(tiny_mnist_dir))
    assert code == 1 and "PROBLEMS" in out and "parses: 600 train / 200 test" in out
    code, out, _ = run(capsys, "data", "list", "--data-dir", str(tiny_mnist_dir), "--json")
    found = {row["name"]: row.get("found") for row in json.loads(out)}
    assert found["mnist"] == str(tiny_mnist_dir)


def test_errors_that_are_not_the_users_keep_their_traceback(monkeypatch):
    """Only cnnzoo's own errors become one-line messages: a ValueError from below (PyTorch's, say)
    is a bug."""
    from cnnzoo.commands import models

    def broken(args):
        raise ValueError("something inside PyTorch")

    monkeypatch.setattr(models, "cmd_list", broken)
    with pytest.raises(ValueError, match="inside PyTorch"):
        main(["list"])


def test_scratch_reports_a_bad_argument_on_a_machine_without_torch(tmp_path):
    """The CLI's error handling must not need torch: with torch unimportable, a scratch demo given a
    folder of damaged data files says so in one line and exits 2 (it used to die with
    ModuleNotFoundError: torch)."""
    from cnnzoo.data.sources import get_source

    for name in get_source("fashion-mnist").file_names:
        (tmp_path / name).write_bytes(b"not an IDX file")
    code = ("import sys; sys.modules['torch'] = None; from cnnzoo import cli; "
            f"sys.exit(cli.main(['scratch', 'mlp', '--quick', '--out', {str(tmp_path / 'o')!r}, "
            f"'--data-dir', {str(tmp_path)!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "idx" in result.stderr.lower() and "Traceback" not in result.stderr


@pytest.mark.parametrize("argv, message", [
    (["--lr", "nan"], "argument --lr: must be a finite number"),
    (["--momentum", "1.5"], "argument --momentum: must be ≥ 0 and < 1"),
    (["--train-subset", "0"], "argument --train-subset: must be ≥ 1"),
    (["--label-smoothing", "2"], "argument --label-smoothing: must be ≥ 0 and < 1"),
    (["--model-kwargs", "[1]"], "JSON object"),
])
def test_option_values_are_checked_by_the_config_as_they_are_parsed(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "lenet5", *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_recipe_and_command_line_builder_arguments_merge_key_by_key():
    """--model-kwargs on a recipe adds to the recipe's builder arguments instead of replacing
    them."""
    from cnnzoo.cli import build_parser
    from cnnzoo.commands.train import given_options
    from cnnzoo.recipes import train_config

    args = build_parser().parse_args(["train", "--recipe", "nin-small", "--model-kwargs",
                                      '{"dropout": 0.3}', "--epochs", "2"])
    config = train_config(args.recipe, given_options(args))
    assert config.model_kwargs == {"widths": [32, 64, 64], "batch_norm": True, "dropout": 0.3}
    assert config.epochs == 2 and config.time_budget == 350  # the rest of the recipe stays


def test_model_table_is_cached_and_rebuilt_when_the_model_code_changes(tmp_path, monkeypatch):
    from cnnzoo import model_table

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = model_table.model_table("resnet*")
    assert [row["name"] for row in first][:4] == ["resnet18", "resnet18_small", "resnet20",
                                                  "resnet32"]
    assert [row["name"] for row in first][-1] == "resnet152"  # natural order: 152 after 110
    monkeypatch.setattr(model_table, "_build_table", lambda: pytest.fail("the cache was not used"))
    assert model_table.model_table("resnet*") == first
    # a changed source file changes the key: the table is built again
    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "vgg.py").write_text("# changed")
    monkeypatch.setattr(model_table, "_SOURCES", [sources])
    rebuilt = {"models": [{"name": "rebuilt"}], "recipes": []}
    monkeypatch.setattr(model_table, "_build_table", lambda: rebuilt)
    assert model_table.model_table() == [{"name": "rebuilt"}]
    # a cache file that parses but lacks a part (damaged, or hand-edited) is built again too
    model_table._cache_file().write_text('{"models": []}')
    monkeypatch.setattr(model_table, "_build_table", lambda: {**rebuilt, "models": [{"name": "x"}]})
    assert model_table.model_table() == [{"name": "x"}]
    assert "recipes" in json.loads(model_table._cache_file().read_text())


def test_a_warm_list_does_not_import_torch(tmp_path):
    env = {**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-m", "cnnzoo", "list"], check=True, capture_output=True,
                   env=env)
    code = ("import sys; from cnnzoo.cli import main; main(['list', 'vgg1*']); assert 'torch' not "
            "in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            check=True)
    assert result.stdout.splitlines()[1].startswith("vgg11 ")


def test_train_help_groups_its_options_and_shows_only_defaults_it_applies():
    result = subprocess.run([sys.executable, "-m", "cnnzoo", "train", "--help"],
                            capture_output=True, text=True, check=True)
    text = result.stdout
    for group in ("what to train:", "how long:", "optimisation:", "data and augmentation:",
                  "runtime:"):
        assert group in text
    assert "(default: lenet5)" not in text and "(default: fashion-mnist)" in text
    assert text.index("how long:") < text.index("--time-budget") < text.index("optimisation:")


def test_result_sentence_counts_epochs_and_says_when_the_budget_stopped_the_run():
    from cnnzoo.commands.train import result_sentence

    base = {"test_top1": 0.9, "test_top5": 0.99, "train_seconds": 30.0, "run_dir": "runs/x"}
    assert "after 1 epoch," in result_sentence({**base, "epochs": 1, "stopped_by": "epochs"})
    cut = result_sentence({**base, "epochs": 5, "stopped_by": "time_budget"})
    assert "after 5 epochs; the time budget stopped the run" in cut


def test_version_and_debug_after_the_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("cnnzoo ")
    with pytest.raises(Exception, match="resnt18"):
        main(["summary", "resnt18", "--debug"])


def test_asking_for_pretrained_weights_says_none_ship():
    import cnnzoo
    from cnnzoo.errors import ConfigError

    with pytest.raises(ConfigError, match="no pretrained weights"):
        cnnzoo.create_model("resnet50", pretrained=True)


def test_a_run_of_few_optimiser_steps_says_so(tiny_mnist_dir, tmp_path):
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train

    messages: list[str] = []
    train(TrainConfig(model="convnet", dataset="mnist", data_dir=str(tiny_mnist_dir), epochs=1,
                      batch_size=100, out=str(tmp_path / "r")), log=messages.append)
    assert any("only 6 optimiser steps" in message for message in messages)


# ------------------------------------------------------ nothing lost (see also test_reliability.py)


def _tiny_train(data_dir, out) -> list[str]:
    return ["train", "--model", "mlp", "--model-kwargs", '{"hidden": [16]}', "--dataset", "mnist",
            "--data-dir",
            str(data_dir), "--epochs", "1", "--batch-size", "100", "--no-progress", "--out",
            str(out)]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_mnist_dir):
    out = tmp_path_factory.mktemp("cli-run") / "run"
    assert main(_tiny_train(tiny_mnist_dir, out)) == 0
    return out


def _files(run_dir) -> dict:
    return {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_train_refuses_an_out_directory_holding_a_run_unless_overwrite(
    capsys, tiny_run, tiny_mnist_dir, tmp_path
):
    """`train --out EXISTING_RUN` used to write its checkpoints over the other run's, silently."""
    import shutil

    before = _files(tiny_run)
    code, out, err = run(capsys, *_tiny_train(tiny_mnist_dir, tiny_run))
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert (
        f"{tiny_run} already holds a cnnzoo run" in err
        and f"--resume {tiny_run}" in err
        and "--overwrite" in err
    )
    assert _files(tiny_run) == before
    code, _, err = run(capsys, "train", "--resume", str(tiny_run), "--overwrite")
    assert code == 2 and "takes no --overwrite" in err
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    code, out, _ = run(capsys, *_tiny_train(tiny_mnist_dir, copy), "--overwrite", "--json")
    assert code == 0 and json.loads(out)["run_dir"] == str(copy)


def test_a_full_disk_mid_run_is_one_line_naming_the_file(capsys, tmp_path, monkeypatch,
                                                         tiny_mnist_dir):
    import errno
    import os
    from pathlib import Path

    fsync = os.fsync

    def disk_full_on_last(fd):
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(".last.safetensors."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", disk_full_on_last)
    code, out, err = run(capsys, *_tiny_train(tiny_mnist_dir, tmp_path / "run"))
    last_line = err.strip().splitlines()[-1]
    assert code == 2 and out == "" and "Traceback" not in err
    assert last_line.startswith("cnnzoo train: error: cannot write "
                                f"{tmp_path / 'run/checkpoints/last.safetensors'}: the disk is "
                                "full; ")
    assert "free space" in last_line and f"cnnzoo train --resume {tmp_path / 'run'}" in last_line


def test_resume_without_a_finished_epoch_says_to_start_again(capsys, tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "config.json").write_text("{}")
    code, _, err = run(capsys, "train", "--resume", str(tmp_path / "run"))
    assert code == 2 and "no epoch finished" in err and "--overwrite" in err
    code, _, err = run(capsys, "train", "--resume", str(tmp_path / "nowhere"))
    assert code == 2 and "no such run directory" in err


def test_dist_timeout_is_an_option_checked_like_the_others(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "lenet5", "--dist-timeout", "0"])
    assert (
        exit_info.value.code == 2
        and "argument --dist-timeout: must be > 0" in capsys.readouterr().err
    )
    result = subprocess.run([sys.executable, "-m", "cnnzoo", "train", "--help"],
                            capture_output=True, text=True, check=True)
    assert "--dist-timeout" in result.stdout and "--overwrite" in result.stdout


def test_predict_names_missing_files_directories_and_fifos(capsys, tiny_run, tmp_path):
    """A FIFO used to block `cnnzoo predict` forever; a missing file or a directory got "re-save
    it"."""
    import os
    import threading

    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "folder").mkdir()
    cases = [("gone.png", "gone.png: no such file"), ("folder", "folder: is a directory, give "
                                                                "image files"),
             ("fifo.png", "fifo.png: not a regular file (a FIFO, socket or device), give image "
                          "files")]
    for name, message in cases:
        outcome = []
        argv = ["predict", str(tiny_run), str(tmp_path / name)]
        worker = threading.Thread(target=lambda argv=argv,
                                  outcome=outcome: outcome.append(main(argv)), daemon=True)
        worker.start()
        worker.join(60)
        if worker.is_alive():
            # let the blocked reader go
            os.close(os.open(tmp_path / name, os.O_WRONLY | os.O_NONBLOCK))
            pytest.fail(f"`cnnzoo predict` blocked on {name}")
        err = capsys.readouterr().err
        assert outcome == [2] and err == f"cnnzoo predict: error: {tmp_path / message}\n", err


@pytest.mark.parametrize("argv, message", [
    (["predict", "run", "x.png", "--top-k", "0"], "--top-k"),
    (["predict", "run", "x.png", "--top-k", "-1"], "--top-k"),
    (["summary", "lenet5", "--input-size", "1,100000,100000"], "--input-size"),
    (["summary", "lenet5", "--num-classes", "-5"], "--num-classes"),
])
def test_bad_command_line_values_are_refused_naming_the_option(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_data_dir_that_does_not_exist_is_an_error_not_ignored(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "lenet5", "--data-dir", str(tmp_path / "nowhere"), "--out",
              str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert (
        exit_info.value.code == 2
        and "argument --data-dir: no such folder" in err
        and "nowhere" in err
    )
    assert not (tmp_path / "r").exists()
