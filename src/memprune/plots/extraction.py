"""Figures of the extraction rate: against sparsity, against prefix length k, against duplication.

A member sample is extracted at k when greedy decoding from its k-token prefix reproduces the
S-token suffix exactly. The rate is the share of members extracted, drawn with its Wilson 95%
interval as a band.
"""

import logging
from collections.abc import Sequence
from typing import Any

import polars as pl
from matplotlib.figure import Figure

from memprune.plots.drawing import (
    add_strategy_legend,
    draw_dense_baseline,
    draw_strategy_line,
    set_count_axis,
    set_rate_axis,
    set_sparsity_axis,
)
from memprune.plots.layout import figure_size, panel_grid
from memprune.plots.style import DENSE_STRATEGY, figure_style, new_figure, order_strategies
from memprune.plots.tables import (
    RATE_COLUMNS,
    PlotInputError,
    check_table,
    float_values,
    select_model,
    select_value,
)

logger = logging.getLogger(__name__)

_MULTI_PANEL_LEGEND_COLUMNS = 4
_SINGLE_PANEL_LEGEND_COLUMNS = 2


def _pruned_strategies(rows: pl.DataFrame, table_name: str, model: str) -> list[str]:
    strategies = order_strategies(rows.get_column("strategy").unique().to_list())
    if not strategies:
        raise PlotInputError(
            f"the {table_name} table has only '{DENSE_STRATEGY}' rows for model {model!r}; "
            "there is no pruned strategy to plot"
        )
    return strategies


def plot_extraction_vs_sparsity(
    summary: pl.DataFrame, model: str | None = None, ks: Sequence[int] | None = None
) -> tuple[Figure, dict[str, Any]]:
    """Plot extraction rate against sparsity, one line per strategy and one panel per prefix length k.

    Each panel marks the dense baseline with a dashed line and a star at sparsity 0.

    Args:
        summary: the summary table.
        model: the model to plot; may be omitted when the table contains one model.
        ks: the prefix lengths to show, one panel each; all of the model's by default.

    Returns:
        The figure and its caption facts: model, ks, strategies, sparsities, the dense rate per k
        (None where the baseline is missing), the highest pruned rate and the number of
        strategy x k lines that have no rows.

    Raises:
        PlotInputError: on a malformed table, an unknown model, or a k with no rows.
    """
    check_table(summary, "summary", RATE_COLUMNS)
    model, rows = select_model(summary, model, "summary")
    if ks is None:
        ks = sorted(rows.get_column("k").unique().to_list())
    panels = [(int(k), select_value(rows, "k", int(k), "summary", model)) for k in ks]
    if not panels:
        raise PlotInputError("ks is empty; pass at least one prefix length k")
    strategies = _pruned_strategies(rows, "summary", model)
    sparsities = sorted(rows.get_column("sparsity").unique().to_list())

    n_rows, n_columns = panel_grid(len(panels))
    legend_columns = _MULTI_PANEL_LEGEND_COLUMNS if n_columns > 1 else _SINGLE_PANEL_LEGEND_COLUMNS
    dense_rate_by_k: dict[int, float | None] = {}
    n_missing_lines = 0

    with figure_style():
        figure = new_figure(*figure_size(n_rows, n_columns, len(strategies) + 1, legend_columns))
        # Rates grow several-fold with k, so each panel scales its own y axis.
        axes = figure.subplots(n_rows, n_columns, squeeze=False)

        for index, (ax, (k, k_rows)) in enumerate(zip(axes.flat, panels)):
            for strategy in strategies:
                line_rows = k_rows.filter(pl.col("strategy") == strategy)
                if line_rows.height == 0:
                    n_missing_lines += 1
                    logger.warning("model %s: strategy %s has no rows at k=%d; its line is absent", model, strategy, k)
                    continue
                draw_strategy_line(
                    ax,
                    float_values(line_rows, "sparsity"),
                    float_values(line_rows, "extraction_rate"),
                    strategy,
                    float_values(line_rows, "extraction_rate_low"),
                    float_values(line_rows, "extraction_rate_high"),
                )

            dense = k_rows.filter(pl.col("strategy") == DENSE_STRATEGY)
            dense_rate_by_k[k] = None
            if dense.height:
                dense_row = dense.row(0, named=True)
                dense_rate_by_k[k] = float(dense_row["extraction_rate"])
                draw_dense_baseline(
                    ax,
                    dense_row["extraction_rate"],
                    dense_row["extraction_rate_low"],
                    dense_row["extraction_rate_high"],
                )
            else:
                logger.warning("model %s has no '%s' row at k=%d; the baseline is not marked", model, DENSE_STRATEGY, k)

            ax.set_title(f"k = {k}")
            set_sparsity_axis(ax, sparsities)
            set_rate_axis(ax)
            if index % n_columns:
                ax.set_ylabel("")

        for ax in axes.flat[len(panels):]:
            ax.set_visible(False)
        has_dense = any(rate is not None for rate in dense_rate_by_k.values())
        add_strategy_legend(figure, strategies, has_dense, legend_columns)

    pruned = rows.filter((pl.col("strategy") != DENSE_STRATEGY) & pl.col("k").is_in([k for k, _ in panels]))
    facts = {
        "figure": "extraction_vs_sparsity",
        "model": model,
        "ks": [k for k, _ in panels],
        "strategies": strategies,
        "sparsities": sparsities,
        "dense_extraction_rate_by_k": dense_rate_by_k,
        "max_pruned_extraction_rate": pruned.get_column("extraction_rate").max(),
        "n_missing_lines": n_missing_lines,
    }
    logger.info(
        "drew extraction rate vs sparsity for model %s: %d panels, %d strategies", model, len(panels), len(strategies)
    )
    return figure, facts


def _plot_rate_against_count(
    rows: pl.DataFrame,
    count_column: str,
    sparsity: int,
    model: str,
    table_name: str,
    axis_label: str,
    title: str,
) -> tuple[Figure, dict[str, Any]]:
    """Draw extraction rate against an integer column for the dense model and each strategy at `sparsity`."""
    pruned = select_value(rows.filter(pl.col("strategy") != DENSE_STRATEGY), "sparsity", sparsity, table_name, model)
    dense = rows.filter(pl.col("strategy") == DENSE_STRATEGY)
    strategies = _pruned_strategies(pruned, table_name, model)
    all_strategies = order_strategies(rows.get_column("strategy").unique().to_list())
    missing = [strategy for strategy in all_strategies if strategy not in strategies]
    if missing:
        logger.warning(
            "model %s: strategies %s have no rows at sparsity %d%%; their lines are absent", model, missing, sparsity
        )
    if dense.height == 0:
        logger.warning(
            "model %s has no '%s' rows in the %s table; the baseline is not drawn", model, DENSE_STRATEGY, table_name
        )

    counts = sorted(rows.get_column(count_column).unique().to_list())
    drawn = [DENSE_STRATEGY] * bool(dense.height) + strategies

    with figure_style():
        figure = new_figure(*figure_size(1, 1, len(strategies) + 1, _SINGLE_PANEL_LEGEND_COLUMNS))
        ax = figure.subplots()
        for strategy in drawn:
            line_rows = (dense if strategy == DENSE_STRATEGY else pruned.filter(pl.col("strategy") == strategy))
            draw_strategy_line(
                ax,
                float_values(line_rows, count_column),
                float_values(line_rows, "extraction_rate"),
                strategy,
                float_values(line_rows, "extraction_rate_low"),
                float_values(line_rows, "extraction_rate_high"),
            )
        x_scale = set_count_axis(ax, counts, axis_label)
        set_rate_axis(ax)
        ax.set_title(title)
        add_strategy_legend(figure, strategies, bool(dense.height), _SINGLE_PANEL_LEGEND_COLUMNS)

    facts = {
        "model": model,
        "sparsity": sparsity,
        "strategies": strategies,
        "strategies_missing": missing,
        "dense_baseline": bool(dense.height),
        "x_scale": x_scale,
        "max_pruned_extraction_rate": float(pruned.get_column("extraction_rate").max()),
    }
    return figure, facts


def plot_extraction_vs_prefix_length(
    summary: pl.DataFrame, sparsity: int, model: str | None = None
) -> tuple[Figure, dict[str, Any]]:
    """Plot extraction rate against prefix length k at one sparsity: one line per strategy, plus dense.

    The k axis is log2 when every k is a power of two. Strategies with no rows at `sparsity` are
    left out, logged and listed in the facts.

    Args:
        summary: the summary table.
        sparsity: the sparsity (integer percent) of the pruned models to show.
        model: the model to plot; may be omitted when the table contains one model.

    Returns:
        The figure and its caption facts: model, sparsity, ks, strategies, strategies_missing,
        dense_baseline, x_scale and the highest pruned rate.

    Raises:
        PlotInputError: on a malformed table, an unknown model, or no pruned rows at `sparsity`.
    """
    check_table(summary, "summary", RATE_COLUMNS)
    model, rows = select_model(summary, model, "summary")
    figure, facts = _plot_rate_against_count(
        rows, "k", sparsity, model, "summary", "Prefix length k (tokens)", f"Sparsity {sparsity}%"
    )
    facts = {"figure": "extraction_vs_prefix_length", **facts, "ks": sorted(rows.get_column("k").unique().to_list())}
    logger.info("drew extraction rate vs k for model %s at sparsity %d%%", model, sparsity)
    return figure, facts


def plot_extraction_vs_duplicates(
    duplication: pl.DataFrame, k: int, sparsity: int, model: str | None = None
) -> tuple[Figure, dict[str, Any]]:
    """Plot extraction rate against how often a sample is duplicated in the training data.

    One line per strategy at `sparsity` plus the dense model, all at prefix length `k`, in the
    strategy colours of the other figures. The duplicates axis is log2 when every count is a power
    of two.

    Args:
        duplication: the duplication table.
        k: the prefix length in tokens.
        sparsity: the sparsity (integer percent) of the pruned models to show.
        model: the model to plot; may be omitted when the table contains one model.

    Returns:
        The figure and its caption facts: model, k, sparsity, duplicates, strategies,
        strategies_missing, dense_baseline, x_scale, the highest pruned rate and the fewest
        members behind one point (small bins give wide intervals).

    Raises:
        PlotInputError: on a malformed table, an unknown model, or no rows at `k` or `sparsity`.
    """
    check_table(duplication, "duplication", [*RATE_COLUMNS, "n", "n_extracted"])
    model, rows = select_model(duplication, model, "duplication")
    rows = select_value(rows, "k", k, "duplication", model)
    figure, facts = _plot_rate_against_count(
        rows,
        "duplicates",
        sparsity,
        model,
        "duplication",
        "Duplicates in training data",
        f"k = {k}, sparsity {sparsity}%",
    )
    drawn_rows = rows.filter((pl.col("strategy") == DENSE_STRATEGY) | (pl.col("sparsity") == sparsity))
    facts = {
        "figure": "extraction_vs_duplicates",
        **facts,
        "k": k,
        "duplicates": sorted(rows.get_column("duplicates").unique().to_list()),
        "min_members_per_point": int(drawn_rows.get_column("n").min()),
    }
    logger.info("drew extraction rate vs duplicates for model %s at k=%d, sparsity %d%%", model, k, sparsity)
    return figure, facts
