"""Figures of the cost of pruning: perplexity against sparsity, and the extraction-perplexity trade-off.

Perplexity is exp of the mean next-token negative log-likelihood on held-out non-member text.
A diverged pruned model has an inf or NaN perplexity. Such points are drawn in a shaded strip past
the end of the axis (see `memprune.plots.nonfinite`) and counted in the caption facts.
"""

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from memprune.plots.drawing import (
    add_strategy_legend,
    draw_dense_baseline,
    draw_strategy_line,
    set_log_axis,
    set_rate_axis,
    set_sparsity_axis,
)
from memprune.plots.layout import figure_size
from memprune.plots.nonfinite import (
    ClipSeries,
    NonFiniteCounts,
    count_nonfinite,
    draw_clipped_markers,
    label_clip_strip,
    padded_limits,
    reserve_clip_strip,
)
from memprune.plots.style import DENSE_STRATEGY, DENSE_STYLE, figure_style, new_figure, order_strategies, strategy_style
from memprune.plots.tables import RATE_COLUMNS, PlotInputError, check_table, float_values, select_model, select_value

logger = logging.getLogger(__name__)

_LEGEND_COLUMNS = 2

# Limits of a log perplexity axis that has no finite value to fit.
_DEFAULT_PERPLEXITY_LIMITS = (1.0, 10.0)


def _check_perplexity_values(rows: pl.DataFrame, model: str) -> None:
    """Reject finite perplexities <= 0 and -inf: a perplexity is at least 1, so these are corrupt."""
    values = float_values(rows, "token_perplexity")
    with np.errstate(invalid="ignore"):
        invalid = (np.isfinite(values) & (values <= 0)) | (values == -np.inf)
    if invalid.any():
        row = rows.row(int(np.flatnonzero(invalid)[0]), named=True)
        raise PlotInputError(
            f"token_perplexity must be positive (or inf/NaN for a diverged model), got {row['token_perplexity']!r} "
            f"for model {model!r}, strategy {row['strategy']!r}, sparsity {row['sparsity']!r}, k {row['k']!r}"
        )


def _perplexity_by_point(rows: pl.DataFrame, model: str) -> pl.DataFrame:
    """Reduce the per-k rows to one token perplexity per strategy x sparsity.

    Perplexity does not depend on k, so the summary repeats it in every k row. Differing copies
    mean the table was joined wrongly, and raise PlotInputError.
    """
    points = (
        rows.with_columns(pl.col("token_perplexity").cast(pl.Float64).fill_null(float("nan")))
        .group_by(["strategy", "sparsity"], maintain_order=True)
        .agg(pl.col("token_perplexity").n_unique().alias("n_values"), pl.col("token_perplexity").first())
    )
    conflicting = points.filter(pl.col("n_values") > 1)
    if conflicting.height:
        row = conflicting.row(0, named=True)
        raise PlotInputError(
            f"token_perplexity differs between k rows of model {model!r}, strategy {row['strategy']!r}, "
            f"sparsity {row['sparsity']!r}; it is measured once per pruned model and must repeat unchanged"
        )
    return points.drop("n_values").sort(["strategy", "sparsity"])


def _nonfinite_point_names(points: pl.DataFrame) -> list[str]:
    values = float_values(points, "token_perplexity")
    names = []
    for index in np.flatnonzero(~np.isfinite(values)):
        row = points.row(int(index), named=True)
        kind = "NaN" if np.isnan(row["token_perplexity"]) else "inf"
        names.append(f"{row['strategy']} at {row['sparsity']}%: {kind}")
    return names


def _perplexity_facts(points: pl.DataFrame, counts: NonFiniteCounts) -> dict[str, Any]:
    return {
        "n_inf_perplexity": counts.n_inf,
        "n_nan_perplexity": counts.n_nan,
        "n_nonfinite_perplexity": counts.total,
        "nonfinite_perplexity_points": _nonfinite_point_names(points),
    }


def _dense_perplexity(points: pl.DataFrame) -> float | None:
    dense = points.filter(pl.col("strategy") == DENSE_STRATEGY)
    return float(dense.get_column("token_perplexity")[0]) if dense.height else None


def plot_perplexity_vs_sparsity(summary: pl.DataFrame, model: str | None = None) -> tuple[Figure, dict[str, Any]]:
    """Plot held-out token perplexity against sparsity on a log axis, one line per strategy.

    The dense baseline is a dashed line and a star at sparsity 0. Inf and NaN perplexities are
    drawn as triangles in a strip at the top of the axis.

    Args:
        summary: the summary table.
        model: the model to plot; may be omitted when the table contains one model.

    Returns:
        The figure and its caption facts: model, strategies, sparsities, dense_perplexity, and the
        counts n_inf_perplexity, n_nan_perplexity, n_nonfinite_perplexity with the points they are.

    Raises:
        PlotInputError: on a malformed table, an unknown model, no pruned rows, perplexities that
            are zero or negative, or a perplexity that differs between k rows of one pruned model.
    """
    check_table(summary, "summary", ["token_perplexity"])
    model, rows = select_model(summary, model, "summary")
    _check_perplexity_values(rows, model)
    points = _perplexity_by_point(rows, model)
    strategies = order_strategies(points.get_column("strategy").unique().to_list())
    if not strategies:
        raise PlotInputError(
            f"the summary table has only '{DENSE_STRATEGY}' rows for model {model!r}; "
            "there is no pruned strategy to plot"
        )
    sparsities = sorted(points.get_column("sparsity").unique().to_list())
    dense_perplexity = _dense_perplexity(points)
    values = float_values(points, "token_perplexity")
    counts = count_nonfinite(values)

    with figure_style():
        figure = new_figure(*figure_size(1, 1, len(strategies) + 1, _LEGEND_COLUMNS))
        ax = figure.subplots()
        set_log_axis(ax, "y")
        for strategy in strategies:
            line_points = points.filter(pl.col("strategy") == strategy)
            draw_strategy_line(
                ax, float_values(line_points, "sparsity"), float_values(line_points, "token_perplexity"), strategy
            )
        if dense_perplexity is not None:
            draw_dense_baseline(ax, dense_perplexity)

        limits = padded_limits(values, "log", _DEFAULT_PERPLEXITY_LIMITS)
        if counts.total:
            strip_middle = reserve_clip_strip(ax, "y", limits, "log")
            drawn = [DENSE_STRATEGY] * (dense_perplexity is not None) + strategies
            series = []
            for strategy in drawn:
                line_points = points.filter(pl.col("strategy") == strategy)
                positions = float_values(line_points, "sparsity")
                series.append(ClipSeries(strategy, positions, float_values(line_points, "token_perplexity")))
            draw_clipped_markers(ax, "y", strip_middle, series, dodge="position")
            label_clip_strip(ax, "y", counts, "perplexity")
        else:
            ax.set_ylim(*limits)

        set_sparsity_axis(ax, sparsities)
        ax.set_ylabel("Token perplexity")
        add_strategy_legend(figure, strategies, dense_perplexity is not None, _LEGEND_COLUMNS)

    facts = {
        "figure": "perplexity_vs_sparsity",
        "model": model,
        "strategies": strategies,
        "sparsities": sparsities,
        "dense_perplexity": dense_perplexity,
        **_perplexity_facts(points, counts),
    }
    logger.info(
        "drew perplexity vs sparsity for model %s: %d points, %d inf and %d NaN perplexities",
        model,
        points.height,
        counts.n_inf,
        counts.n_nan,
    )
    return figure, facts


def _default_annotated_sparsities(sparsities: Sequence[int]) -> list[int]:
    """Pick the middle and the highest pruned sparsity, so the chains get two labels each."""
    pruned = sorted(sparsity for sparsity in sparsities if sparsity > 0)
    if not pruned:
        return []
    return sorted({pruned[(len(pruned) - 1) // 2], pruned[-1]})


def _annotate_sparsity(
    ax: Axes, perplexity: np.ndarray, rate: np.ndarray, sparsity: np.ndarray, annotated: Sequence[int], color: str
) -> None:
    for x, y, level in zip(perplexity, rate, sparsity):
        if int(level) in annotated and np.isfinite(x):
            ax.annotate(
                f"{int(level)}%",
                (x, y),
                xytext=(2.5, 2.5),
                textcoords="offset points",
                fontsize=7,
                color=color,
                path_effects=[patheffects.withStroke(linewidth=2.0, foreground="white")],
                label="_sparsity annotation",
            )


def plot_extraction_vs_perplexity(
    summary: pl.DataFrame, k: int, model: str | None = None, annotated_sparsities: Sequence[int] | None = None
) -> tuple[Figure, dict[str, Any]]:
    """Plot the trade-off: extraction rate at prefix length k against token perplexity (log x axis).

    Each strategy's points are joined in order of sparsity, starting from the dense model (a star),
    so each line traces what pruning buys in lower extraction for its cost in perplexity. Inf and
    NaN perplexities are drawn as triangles in a strip at the right edge.

    Args:
        summary: the summary table.
        k: the prefix length in tokens.
        model: the model to plot; may be omitted when the table contains one model.
        annotated_sparsities: sparsities (integer percent) whose points get a text label; by default
            the middle and the highest pruned sparsity.

    Returns:
        The figure and its caption facts: model, k, strategies, annotated_sparsities,
        dense_perplexity, dense_extraction_rate, and the counts n_inf_perplexity,
        n_nan_perplexity, n_nonfinite_perplexity with the points they are.

    Raises:
        PlotInputError: on a malformed table, an unknown model, a k with no rows, no pruned rows, or
            perplexities that are zero or negative.
    """
    check_table(summary, "summary", [*RATE_COLUMNS, "token_perplexity"])
    model, rows = select_model(summary, model, "summary")
    rows = select_value(rows, "k", k, "summary", model).sort(["strategy", "sparsity"])
    _check_perplexity_values(rows, model)
    strategies = order_strategies(rows.get_column("strategy").unique().to_list())
    if not strategies:
        raise PlotInputError(f"the summary table has only '{DENSE_STRATEGY}' rows for model {model!r} at k={k}")
    if annotated_sparsities is None:
        annotated_sparsities = _default_annotated_sparsities(rows.get_column("sparsity").unique().to_list())

    dense = rows.filter(pl.col("strategy") == DENSE_STRATEGY)
    if dense.height == 0:
        logger.warning(
            "model %s has no '%s' row at k=%d; the chains start at the first pruned point", model, DENSE_STRATEGY, k
        )
    values = float_values(rows, "token_perplexity")
    counts = count_nonfinite(values)

    with figure_style():
        figure = new_figure(*figure_size(1, 1, len(strategies) + 1, _LEGEND_COLUMNS))
        ax = figure.subplots()
        set_log_axis(ax, "x")
        for strategy in strategies:
            chain = pl.concat([dense, rows.filter(pl.col("strategy") == strategy)])
            perplexity = float_values(chain, "token_perplexity")
            rate = float_values(chain, "extraction_rate")
            style = strategy_style(strategy)
            # The chain follows sparsity order, not perplexity order, so it is drawn as given.
            ax.plot(
                np.where(np.isfinite(perplexity), perplexity, np.nan),
                rate,
                color=style.color,
                marker=style.marker,
                linestyle=style.linestyle,
                label=strategy,
                zorder=3,
            )
            _annotate_sparsity(ax, perplexity, rate, float_values(chain, "sparsity"), annotated_sparsities, style.color)

        dense_perplexity = None
        dense_rate = None
        if dense.height:
            dense_row = dense.row(0, named=True)
            dense_perplexity = float(dense_row["token_perplexity"])
            dense_rate = float(dense_row["extraction_rate"])
            if np.isfinite(dense_perplexity):
                ax.plot(
                    [dense_perplexity],
                    [dense_rate],
                    color=DENSE_STYLE.color,
                    marker=DENSE_STYLE.marker,
                    markersize=7,
                    linestyle="none",
                    zorder=5,
                    label=DENSE_STRATEGY,
                )

        limits = padded_limits(values, "log", _DEFAULT_PERPLEXITY_LIMITS)
        if counts.total:
            strip_middle = reserve_clip_strip(ax, "x", limits, "log")
            drawn = [DENSE_STRATEGY] * bool(dense.height) + strategies
            series = []
            for strategy in drawn:
                line_rows = rows.filter(pl.col("strategy") == strategy)
                positions = float_values(line_rows, "extraction_rate")
                series.append(ClipSeries(strategy, positions, float_values(line_rows, "token_perplexity")))
            draw_clipped_markers(ax, "x", strip_middle, series, dodge="series")
            label_clip_strip(ax, "x", counts, "perplexity")
        else:
            ax.set_xlim(*limits)

        ax.set_xlabel("Token perplexity")
        set_rate_axis(ax, f"Extraction rate (k = {k})")
        add_strategy_legend(figure, strategies, dense.height > 0, _LEGEND_COLUMNS)

    points = rows.select("strategy", "sparsity", "token_perplexity")
    facts = {
        "figure": "extraction_vs_perplexity",
        "model": model,
        "k": k,
        "strategies": strategies,
        "annotated_sparsities": list(annotated_sparsities),
        "dense_perplexity": dense_perplexity,
        "dense_extraction_rate": dense_rate,
        **_perplexity_facts(points, counts),
    }
    logger.info(
        "drew extraction rate vs perplexity for model %s at k=%d: %d inf and %d NaN perplexities",
        model,
        k,
        counts.n_inf,
        counts.n_nan,
    )
    return figure, facts
