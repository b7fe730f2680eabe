"""A matplotlib figure that draws to files only: a ``Figure`` on the Agg canvas, without pyplot.

pyplot keeps global state and ``matplotlib.use`` switches the backend of the whole process (a user's Jupyter
session included), so cnnzoo never calls either: every figure it draws comes from ``new_figure``.
"""

from __future__ import annotations


def new_figure(panels: int = 1, *, width: float = 5.6, height: float = 4.2):
    """A Figure of ``panels`` side-by-side axes of ``width``×``height`` inches each, and the list of its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * panels, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, list(figure.subplots(1, panels, squeeze=False)[0])


def integer_ticks(axis) -> None:
    """Whole-number ticks on an x axis that counts epochs (no "1.2 epochs" on a two-epoch run)."""
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # one-epoch runs too
