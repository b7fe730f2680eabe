"""The training progress bar: a rich bar on stderr with running loss, accuracy and images/s (or
nothing)."""

from __future__ import annotations


class Progress:
    """A context manager around rich's progress bar; every method is a no-op when ``enabled`` is
    False."""

    def __init__(self, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                    MofNCompleteColumn(),
                                    TextColumn("{task.fields[stats]}"), TimeRemainingColumn(),
                                    console=Console(stderr=True), transient=True)

    def __enter__(self) -> Progress:
        if self.bar:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar:
            self.bar.__exit__(*exc)

    def start(self, description: str, total: int):
        return self.bar.add_task(description, total=total, stats="") if self.bar else None

    def update(self, task, stats: str) -> None:
        if self.bar:
            self.bar.update(task, advance=1, stats=stats)

    def finish(self, task) -> None:
        if self.bar:
            self.bar.remove_task(task)
