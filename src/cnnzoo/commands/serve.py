"""``cnnzoo serve [RUNS_DIR]``: the explorer, a local web page over a folder of runs
(``cnnzoo.serve``)."""

from __future__ import annotations

import argparse
import importlib.util

from cnnzoo.commands import options
from cnnzoo.commands.options import number, whole_number
from cnnzoo.engine.config import ANSWER_PRECISIONS
from cnnzoo.errors import ConfigError

EXTRA = ("fastapi", "uvicorn", "multipart")  # the `serve` extra: FastAPI, uvicorn, python-multipart


def cmd_serve(args: argparse.Namespace) -> int:
    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"the explorer needs {', '.join(missing)}: pip install 'cnnzoo[serve]'")
    from cnnzoo.serve.app import serve
    from cnnzoo.serve.limits import MB, Limits

    limits = Limits(max_upload_bytes=int(args.max_upload_mb * MB), max_models=args.max_models,
                    max_inference=args.max_inference)
    serve(args.runs_dir, host=args.host, port=args.port, limits=limits, data_dir=args.data_dir,
          run_code=getattr(args, "run_code", False), precision=args.precision)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("serve", help="the explorer: a web page over your runs (feature maps, "
                                          "Grad-CAM, …)",
                            description="Serve a page and a JSON API over the runs in RUNS_DIR: "
                                        "draw or upload an image and see every layer's feature "
                                        "maps, Grad-CAM, nearest training images; training "
                                        "curves, confusion matrix, layer table; compare runs. "
                                        "Runs made by `cnnzoo import` are listed too; one "
                                        "imported with --code is opened only with --run-code, "
                                        "since that runs its Python file.")
    p.add_argument("runs_dir", nargs="?", default="runs", metavar="RUNS_DIR",
                   help="the folder holding run directories (default: runs)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1; anything else is reachable "
                        "without a password)")
    p.add_argument("--port", type=whole_number(0, 65535), default=8000,
                   help="port (default: 8000; 0 takes a free one)")
    options.add(p, "data_dir", help="where the runs' data sets are (default: as each run was "
                                    "trained)")
    p.add_argument("--max-upload-mb", type=number(above=0, high=10_000), default=10,
                   help="largest upload in MB (default: 10)")
    p.add_argument("--max-models", type=whole_number(1, 1000), default=4,
                   help="models kept loaded (default: 4)")
    p.add_argument("--max-inference", type=whole_number(1, 1000), default=2,
                   help="predictions computed at once; more get 503 (default: 2)")
    p.add_argument("--precision", choices=ANSWER_PRECISIONS, default="fp32",
                   help="the predictions' precision: fp32 (default), bf16 (where the CPU has "
                        "native bf16) or int8 (each run's model kept by `cnnzoo eval --precision "
                        "int8`, else fp32 with the reason); maps and Grad-CAM stay fp32")
    p.set_defaults(run=cmd_serve)
