"""Where runs are written by default: ``runs/<name>-<YYYYmmdd-HHMMSS>/`` (torch-free, used by every command)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

RUNS_ROOT = Path("runs")


def timestamped_run_dir(name: str) -> Path:
    """``runs/<name>-<timestamp>``, with characters that would nest folders replaced."""
    safe = name.replace("folder:", "folder-").replace("/", "_").replace("\\", "_").strip("_")
    return RUNS_ROOT / f"{safe}-{datetime.now():%Y%m%d-%H%M%S}"
