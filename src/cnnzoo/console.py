"""Where human-readable progress goes: stderr, so stdout stays clean for ``--json`` (imports nothing heavy)."""

from __future__ import annotations

import sys


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
