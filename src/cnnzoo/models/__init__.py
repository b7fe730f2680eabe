"""The model families, one module each; importing this package registers every builder.

Each family module's docstring names its paper and every deviation from it.
"""

import pkgutil
from importlib import import_module

FAMILIES = tuple(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base")

for _family in FAMILIES:
    import_module(f"cnnzoo.models.{_family}")
