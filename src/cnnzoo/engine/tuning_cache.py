"""Where the autotuner keeps what it measured: one small JSON file per machine, model, input and
batch.

A measurement holds only for the machine and software it was taken on, so the key is made of
everything that changes the answer: the processor (CPU model and instruction-set flags, or the GPU's
name), the threads used, the model with its builder arguments, the input side, the batch size and
the torch version. Any part changing gives another key, so a stale measurement is never read; each
file also stores its key's parts, and a file whose parts differ from the ones asked for is treated
as missing.

The directory is ``$CNNZOO_TUNING_CACHE`` when set (tests point it at a temporary directory), else
``tuning/`` in the user cache (``$XDG_CACHE_HOME/cnnzoo`` or ``~/.cache/cnnzoo``). Files are written
to a temporary name and renamed, so a reader sees a whole file or none; a damaged or unreadable file
is ignored and rewritten, never an error: the cache only saves time. This module imports no torch.

Every value read back is checked before a run relies on it (a step time that was NaN, negative or
text chose a candidate or crashed the compile decision): a file with one wrong value is ignored
whole, with a warning naming the file and the value, and the next run that measures rewrites it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from cnnzoo.data.dataset_files import user_cache_dir
from cnnzoo.errors import CnnzooError, DataFilesMissing
from cnnzoo.files import atomic_write_text, read_bytes

CACHE_ENV = "CNNZOO_TUNING_CACHE"
KEY_PARTS = ("machine", "threads", "model", "model_kwargs", "input_side", "batch_size", "torch")
MAX_FILE_BYTES = 2**20  # a file holds a few timings (about 1 kB)
MAX_STEP_SECONDS = 3600.0  # a longer step is damage, not a measurement
# a compile trial's fields: (the largest believable value, whether 0 is possible: a compile time
# rounded to 0.00 s is; a step time of 0 would be divided by)
TRIAL_FIELDS = {"eager_ms": (MAX_STEP_SECONDS * 1e3, False),
                "compiled_ms": (MAX_STEP_SECONDS * 1e3, False), "compile_s": (86400.0, True)}
# a one-minute load average above the cores by more than this: other work ran beside the timing
BUSY_MARGIN = 0.5


def busier_than_cores(load: float, cores: int) -> bool:
    """Whether the machine was busier than its cores while something was timed: its timings were
    slowed by other work (the autotuner does not cache them; ``cnnzoo bench`` says so)."""
    return load > cores + BUSY_MARGIN


def tuning_cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV, "")
    return Path(override) if override else user_cache_dir() / "tuning"


def cache_key(parts: dict) -> str:
    """A file name for the measurement keyed by ``parts`` (every name of ``KEY_PARTS``, JSON
    values)."""
    missing = sorted(set(KEY_PARTS) - set(parts))
    if missing:
        raise ValueError(f"a tuning cache key needs {missing}")
    text = json.dumps({name: parts[name] for name in KEY_PARTS}, sort_keys=True,
                      separators=(",", ":"))
    return f"{parts['model']}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"


def _path(parts: dict) -> Path:
    return tuning_cache_dir() / f"{cache_key(parts)}.json"


def read_entry(parts: dict) -> dict:
    """What was measured under ``parts``: ``{"steps": {candidate: seconds}, "compile": {...}}``;
    empty when nothing was, or the file is damaged or belongs to other parts."""
    return load_entry(parts)[0]


def load_entry(parts: dict) -> tuple[dict, str | None]:
    """``read_entry``'s answer and, where the file is there but damaged, a one-line warning naming
    it and its first wrong value (the file is then ignored whole)."""
    path = _path(parts)
    try:
        text = read_bytes(path, MAX_FILE_BYTES, "tuning cache file").decode("utf-8")
        stored = json.loads(text)
        entry = _checked(stored, {name: parts[name] for name in KEY_PARTS})
    except DataFilesMissing:
        return {}, None
    except (CnnzooError, OSError, ValueError, RecursionError) as error:  # RecursionError: [[[[...
        reason = (str(error).replace(f"{path}: ", "").splitlines() or [type(error).__name__])[0]
        return {}, (f"the tuning cache file {path} is damaged ({reason[:200]}); ignored: the next "
                    "measurement rewrites it")
    return entry, None


def _checked(stored, parts: dict) -> dict:
    """The timings in ``stored`` (a file's JSON), rebuilt from the checked values only;
    ``ValueError`` naming the first value that no measurement could have given."""
    if not isinstance(stored, dict):
        raise ValueError(f"holds {type(stored).__name__}, not an object")
    if stored.get("parts") != parts:
        raise ValueError("its 'parts' are not the settings its name stands for")
    entry = {}
    if "steps" in stored:
        steps = _mapping(stored["steps"], "steps")
        entry["steps"] = {label: _seconds(value, f"steps.{label}", MAX_STEP_SECONDS)
                          for label, value in steps.items()}
    if "compile" in stored:
        entry["compile"] = {}
        for label, trial in _mapping(stored["compile"], "compile").items():
            trial = _mapping(trial, f"compile.{label}")
            entry["compile"][label] = {
                field: _seconds(trial.get(field), f"compile.{label}.{field}", bound, zero=zero)
                for field, (bound, zero) in TRIAL_FIELDS.items()}
    return entry


def _mapping(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where} is {type(value).__name__}, not an object")
    return value


def _seconds(value, where: str, bound: float, *, zero: bool = False) -> float:
    """``value`` if it is a time a measurement could give: a number over 0 (or 0 itself, with
    ``zero``) and at most ``bound``; NaN fails both comparisons."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not (0 <= value if zero else 0 < value) or not value <= bound:
        raise ValueError(f"{where} is {json.dumps(value)[:40]}, not a time between 0 and {bound:g}")
    return float(value)


def write_entry(parts: dict, entry: dict) -> Path | None:
    """Store ``entry`` under ``parts`` atomically; returns the file, or None where it cannot be
    written (a read-only home: the run goes on, it only measures again next time)."""
    path = _path(parts)
    text = json.dumps({"parts": {name: parts[name] for name in KEY_PARTS}, **entry}, indent=1,
                      sort_keys=True)
    try:
        atomic_write_text(path, text)
    except OSError:
        return None
    return path
