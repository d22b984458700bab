"""Drawing steps that several figures share: strategy lines, the dense baseline, legends and axes."""

import logging
from collections.abc import Sequence

import numpy as np
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from memprune.plots.style import DENSE_STRATEGY, DENSE_STYLE, display_name, strategy_style

logger = logging.getLogger(__name__)

#: Opacity of the Wilson interval bands.
BAND_ALPHA = 0.15

DENSE_LABEL = "dense (unpruned)"
_DENSE_MARKER_SIZE = 7


def draw_strategy_line(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    strategy: str,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
) -> Line2D:
    """Draw one strategy as a line with markers, and its interval as a band when `low` is given.

    The line's label is the strategy name, so tests and callers can find it. Non-finite `y` values
    leave a gap in the line.
    """
    style = strategy_style(strategy)
    order = np.argsort(x, kind="stable")
    x = np.asarray(x, dtype=float)[order]
    y = np.asarray(y, dtype=float)[order]

    if low is not None and high is not None:
        ax.fill_between(
            x,
            np.asarray(low, dtype=float)[order],
            np.asarray(high, dtype=float)[order],
            color=style.color,
            alpha=BAND_ALPHA,
            linewidth=0,
            label=f"_interval: {strategy}",
        )

    (line,) = ax.plot(
        x,
        np.where(np.isfinite(y), y, np.nan),
        color=style.color,
        marker=style.marker,
        linestyle=style.linestyle,
        markersize=_DENSE_MARKER_SIZE - 1 if strategy == DENSE_STRATEGY else None,
        label=strategy,
        zorder=3,
    )
    return line


def draw_dense_baseline(
    ax: Axes,
    value: float,
    low: float | None = None,
    high: float | None = None,
    x: float = 0.0,
    horizontal_line: bool = True,
) -> None:
    """Mark the unpruned baseline: a dashed horizontal line at `value` and a star at `x`.

    A non-finite `value` draws neither, because the caller draws it in the clip strip instead.
    """
    if not np.isfinite(value):
        return

    if horizontal_line:
        ax.axhline(
            value,
            color=DENSE_STYLE.color,
            linestyle=DENSE_STYLE.linestyle,
            linewidth=0.8,
            zorder=2,
            label="_dense line",
        )
    if low is not None and high is not None:
        ax.errorbar(
            [x],
            [value],
            yerr=[[value - low], [high - value]],
            color=DENSE_STYLE.color,
            linestyle="none",
            linewidth=0.8,
            capsize=2,
            zorder=4,
            label="_dense interval",
        )
    ax.plot(
        [x],
        [value],
        color=DENSE_STYLE.color,
        marker=DENSE_STYLE.marker,
        markersize=_DENSE_MARKER_SIZE,
        linestyle="none",
        zorder=5,
        label=DENSE_STRATEGY,
    )


def add_strategy_legend(figure: Figure, strategies: Sequence[str], include_dense: bool, ncols: int) -> None:
    """Add one legend above all panels, with an entry per strategy and one for the dense baseline."""
    handles = []
    labels = []
    if include_dense:
        handles.append(
            Line2D(
                [],
                [],
                color=DENSE_STYLE.color,
                marker=DENSE_STYLE.marker,
                markersize=_DENSE_MARKER_SIZE,
                linestyle=DENSE_STYLE.linestyle,
                linewidth=0.8,
            )
        )
        labels.append(DENSE_LABEL)
    for strategy in strategies:
        style = strategy_style(strategy)
        handles.append(Line2D([], [], color=style.color, marker=style.marker, linestyle=style.linestyle))
        labels.append(display_name(strategy))

    figure.legend(handles, labels, loc="outside upper center", ncols=min(ncols, len(labels)), columnspacing=1.2)


def is_power_of_two_series(values: Sequence[int]) -> bool:
    """Tell whether every value is a positive power of two (1, 2, 4, ...), so a log2 axis fits."""
    values = [int(value) for value in values]
    return len(values) > 0 and all(value > 0 and value & (value - 1) == 0 for value in values)


def set_count_axis(ax: Axes, values: Sequence[int], label: str) -> str:
    """Set up the x axis for counts such as k or duplicates: log2 when all are powers of two.

    Ticks sit at the values themselves and read as plain integers. Returns "log2" or "linear".
    """
    values = sorted({int(value) for value in values})
    scale = "log2" if is_power_of_two_series(values) and len(values) > 1 else "linear"
    if scale == "log2":
        ax.set_xscale("log", base=2)
        ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_xticks(values)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel(label)
    return scale


def set_log_axis(ax: Axes, axis: str) -> None:
    """Make an axis logarithmic, labelled in plain numbers at each power of ten.

    Ticks between powers of ten get labels only while the axis spans less than about two decades,
    so a wide range (a diverged model's perplexity) keeps its labels apart.
    """
    if axis == "y":
        ax.set_yscale("log")
        target = ax.yaxis
    else:
        ax.set_xscale("log")
        target = ax.xaxis
    target.set_major_locator(ticker.LogLocator(base=10.0))
    target.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    target.set_minor_locator(ticker.LogLocator(base=10.0, subs=(2.0, 5.0)))
    target.set_minor_formatter(ticker.LogFormatter(base=10.0, labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def set_sparsity_axis(ax: Axes, sparsities: Sequence[int]) -> None:
    """Set up an x axis of sparsity in percent, from 0 (dense) to the highest sparsity drawn."""
    highest = max(max(sparsities, default=0), 10)
    ax.set_xlim(-0.05 * highest, 1.05 * highest)
    step = 20 if highest > 50 else 10
    ax.xaxis.set_major_locator(ticker.MultipleLocator(step))
    ax.set_xlabel("Sparsity (%)")


def set_rate_axis(ax: Axes, label: str = "Extraction rate") -> None:
    """Show a proportion axis as percentages, starting at 0."""
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(xmax=1.0, decimals=None))
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel(label)
