"""cnnzoo: the classic convolutional networks of image classification, true to their papers.

The public API is the names in ``__all__``; every other module and name is private by convention and
may change. ``import cnnzoo`` is light: each name imports its module on first use (PEP 562), so
neither this package nor the NumPy-only ``cnnzoo.scratch`` loads torch until a model, a run or
training is asked for.

    model = cnnzoo.create_model("lenet5")           # list_models("resnet*") names the others
    print(cnnzoo.summary(model).table())
    config = cnnzoo.TrainConfig(model="lenet5", dataset="fashion-mnist", epochs=1, out="runs/one")
    cnnzoo.train(config)
    run = cnnzoo.load_run("runs/one")
    cnnzoo.predict(run, ["shoe.png"], top_k=3)
    cnnzoo.evaluate(run).top1
"""

from cnnzoo.version import __version__

__all__ = ["CnnzooError", "Run", "TrainConfig", "__version__", "create_model", "evaluate",
           "list_models", "load_run", "predict", "summary", "train"]


def __getattr__(name: str):
    if name in ("create_model", "list_models"):
        from cnnzoo.models import registry as home
    elif name == "summary":
        from cnnzoo.inspect import summary as home
    elif name == "TrainConfig":
        from cnnzoo.engine import config as home
    elif name == "train":
        from cnnzoo.engine import train as home
    elif name in ("Run", "load_run", "predict", "evaluate"):
        from cnnzoo import api as home
    elif name == "CnnzooError":
        from cnnzoo import errors as home
    else:
        raise AttributeError(f"module 'cnnzoo' has no attribute {name!r}")
    return getattr(home, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
