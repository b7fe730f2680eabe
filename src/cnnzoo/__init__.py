"""cnnzoo: the classic convolutional networks of image classification, true to their papers.

``import cnnzoo`` is light: torch is imported on first use of a model function, so the NumPy-only
``cnnzoo.scratch`` never loads it.
"""

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "summary", "__version__"]


def __getattr__(name):
    if name in ("create_model", "list_models"):
        from cnnzoo.models import registry

        return getattr(registry, name)
    if name == "summary":
        from cnnzoo.inspect.summary import summary

        return summary
    raise AttributeError(f"module 'cnnzoo' has no attribute {name!r}")
