"""A matplotlib figure that draws to files only: a ``Figure`` on the Agg canvas, without pyplot.

pyplot keeps global state and ``matplotlib.use`` switches the backend of the whole process (a user's
Jupyter session included), so cnnzoo never calls either: every figure it draws comes from
``new_figure``.
"""

from __future__ import annotations


def new_figure(panels: int = 1, *, width: float = 5.6, height: float = 4.2):
    """A Figure of ``panels`` side-by-side axes of ``width``×``height`` inches each, and the list of
    its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * panels, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, list(figure.subplots(1, panels, squeeze=False)[0])


def integer_ticks(axis) -> None:
    """Whole-number ticks on an x axis that counts epochs (no "1.2 epochs" on a two-epoch run)."""
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # one-epoch runs too


def plain_numbers(ax, which: str = "y") -> None:
    """Tick labels on ``ax``'s x or y axis as plain numbers (0.6, 30,000), not 6×10⁻¹ or an offset
    "1e6" above the axis. On a log scale matplotlib labels the ticks between powers of ten in
    scientific notation; its choice of which ticks to label is kept, only the text changes."""
    from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation

    def text(value: float) -> str:
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.6g}"

    class PlainLog(LogFormatterSciNotation):
        def __call__(self, value, pos=None):
            return text(value) if super().__call__(value, pos) else ""

    axis = ax.yaxis if which == "y" else ax.xaxis
    if axis.get_scale() == "log":
        axis.set_major_formatter(PlainLog())
        axis.set_minor_formatter(PlainLog(labelOnlyBase=False))
    else:
        axis.set_major_formatter(FuncFormatter(lambda value, _: text(value)))
