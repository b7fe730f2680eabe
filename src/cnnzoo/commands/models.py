"""``cnnzoo list`` and ``cnnzoo summary``: the registered models and their per-layer inspection."""

from __future__ import annotations

import argparse

from cnnzoo.commands import options
from cnnzoo.commands.options import json_arguments, positive_int, whole_number
from cnnzoo.console import print_json
from cnnzoo.errors import ConfigError

# a summary runs one image of this side at most (a 100,000-px side would need terabytes)
MAX_SIDE = 4096


def parse_input_size(text: str) -> tuple[int, ...]:
    """A side (``28``, as `cnnzoo train --input-size` takes) or a full shape ``C,H,W``
    (``1,28,28``)."""
    parts = text.replace("x", ",").split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) not in (1, 3) or min(values) < 1:
        raise argparse.ArgumentTypeError("must be a side (28) or C,H,W (1,28,28) of positive "
                                         f"integers; got {text!r}")
    if max(values[-2:]) > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"must be a side of at most {MAX_SIDE}; got {text!r}")
    return values


def cmd_list(args: argparse.Namespace) -> int:
    from cnnzoo.model_table import model_table, recipe_variants

    rows = model_table(args.pattern)
    if not rows:
        raise ConfigError(f"no model matches {args.pattern!r}; `cnnzoo list` shows them all")
    variants = recipe_variants(rows)
    if args.json:
        print_json([{**row, "recipe_variants": variants.get(row["name"], [])} for row in rows])
        return 0
    print(f"{'model':<30} {'params':>13}  {'input':<12} {'classes':>7}  paper")
    for row in rows:
        print(_list_line(row["name"], row, row["paper"]))
        for variant in variants.get(row["name"], []):
            note = f"{variant['variant']} on {variant['dataset']}"
            print(_list_line(f"  └ recipe {variant['recipe']}", variant, note))
    if args.pattern == "*":
        print(f"\n{len(rows)} models; └ a recipe's variant of the model above (`cnnzoo recipes`), "
              "counted as that recipe trains it")
    return 0


def _list_line(name: str, row: dict, note: str) -> str:
    size = "×".join(map(str, row["input_size"]))
    return f"{name:<30} {row['params']:>13,}  {size:<12} {row['num_classes']:>7}  {note}"


def cmd_summary(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnzoo.engine.build import create_variant
    from cnnzoo.inspect.summary import summary

    if args.code:
        return _summary_of_code(args)
    if args.model is None:
        raise ConfigError("give a model name, a run directory, or --code FILE.py:NAME")
    if Path(args.model).exists():  # a run directory or checkpoint (one `cnnzoo import` made, too)
        return _summary_of_run(args)
    kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
    shape = args.input_size
    if shape is not None:
        kwargs["input_size"] = shape[-1]
        if len(shape) == 3:
            kwargs["in_channels"] = shape[0]
    model = create_variant(args.model, args.model_kwargs or {}, **kwargs)
    result = summary(
        model, (shape if len(shape) == 3 else model.cfg.input_size) if shape is not None else None
    )
    return _print_summary(args, result, args.model_kwargs or {})


def _print_summary(args: argparse.Namespace, result, model_kwargs: dict) -> int:
    """The table (headed by the variant's name), or with ``--json`` the summary and the builder
    arguments it was built with (``model`` stays the builder's name, as in a run's config.json);
    both at ``--depth``."""
    from dataclasses import asdict, replace

    from cnnzoo.engine.config import variant_name

    if args.json:
        print_json({**result.to_dict(), "layers": [asdict(row) for row in result.rows(args.depth)],
                    "model_kwargs": model_kwargs})
    else:
        print(replace(result, model=variant_name(result.model, model_kwargs)).table(
            depth=args.depth))
    return 0


def _summary_of_run(args: argparse.Namespace) -> int:
    """The summary of a run's model, at the input it was trained or imported at."""
    from pathlib import Path

    from cnnzoo.engine.run import load_run
    from cnnzoo.inspect.summary import summary

    if args.num_classes is not None or args.input_size is not None or args.model_kwargs:
        raise ConfigError(f"{args.model} is a run: its model is summarised as it was trained, at "
                          "its own input and classes; leave out --input-size, --num-classes and "
                          "--model-kwargs")
    run = load_run(Path(args.model), run_code=args.run_code)
    result = summary(run.model, tuple(run.model.cfg.input_size))
    kwargs = run.config.get("model_kwargs")
    return _print_summary(args, result, kwargs if isinstance(kwargs, dict) else {})


def _summary_of_code(args: argparse.Namespace) -> int:
    """The summary of a model the user's own file builds (fresh weights: only shapes count)."""
    from pathlib import Path

    from cnnzoo.engine.imported import code_model
    from cnnzoo.inspect.summary import summary

    path, _, attribute = args.code.rpartition(":")
    if args.model is not None or not path or not attribute or args.model_kwargs:
        raise ConfigError(f"--code {args.code}: give FILE.py:NAME (e.g. net.py:Net) and no model "
                          "name or --model-kwargs beside it (--code-args passes its arguments)")
    if args.input_size is None or len(args.input_size) != 3:
        raise ConfigError(f"--code {args.code}: pass --input-size C,H,W, the input it takes")
    result = summary(code_model(Path(path), attribute, args.code_args), args.input_size)
    return _print_summary(args, result, {})


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("list", help="list the registered models",
                            description="List registered models with their parameters and default "
                                        "input size.")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*' "
                                                           "(default: all)")
    options.add(p, "json", help="print a JSON array on stdout")
    p.set_defaults(run=cmd_list)

    p = commands.add_parser(
        "summary", help="per-layer shapes, parameters, multiply-adds and receptive fields",
        description="Run one image through a model and report, for every layer: output shape, "
                    "parameters, multiply-adds, connections (LeCun's count) and receptive field.")
    p.add_argument("model", metavar="MODEL|RUN", nargs="?",
                   help="registered model name (see `cnnzoo list`), or a run directory or "
                        "checkpoint (one `cnnzoo import` wrote, too)")
    p.add_argument("--input-size", type=parse_input_size, metavar="SIDE|C,H,W",
                   help="image side, or the whole input shape (default: the model's own, e.g. "
                        "1,32,32 for lenet5_1998)")
    p.add_argument("--depth", type=whole_number(0, 100), metavar="N",
                   help="show modules N levels down the module path, each adding up the layers "
                        "inside it (e.g. --depth 2 gives resnet50's stages and blocks, 0 the "
                        "whole model in one row; default: every layer)")
    p.add_argument("--num-classes", type=positive_int, metavar="N",
                   help="number of output classes (default: the model's)")
    options.add(p, "model_kwargs", help="builder arguments of a variant, as a JSON object, e.g. "
                                        '\'{"depths": [2, 1, 1]}\' for budgetnet_l as the strong '
                                        "recipe trains it")
    p.add_argument("--code", metavar="FILE.py:NAME",
                   help="summarise the model your own file builds (THIS RUNS THE FILE'S PYTHON); "
                        "needs --input-size C,H,W")
    p.add_argument("--code-args", type=json_arguments, metavar="JSON",
                   help="arguments for --code's NAME: a JSON list or object")
    options.add(p, "json")
    p.set_defaults(run=cmd_summary)
