"""Figure of membership inference against pruned models: ROC AUC against sparsity per attack score.

Each attack separates members from non-members by one score of the model's loss on a sample: the
LOSS itself, the zlib ratio (loss over zlib-compressed size) and Min-K% (the mean of the lowest 20%
token log-probabilities). An AUC of 0.5 is chance; closer to 0.5 after pruning means the pruned
model leaks less membership. A model whose losses are NaN yields a NaN AUC, drawn in a strip at the
top of the axis and counted.
"""

import logging
from typing import Any

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from memprune.plots.drawing import add_strategy_legend, draw_dense_baseline, draw_strategy_line, set_sparsity_axis
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
from memprune.plots.style import DENSE_STRATEGY, figure_style, new_figure, order_strategies
from memprune.plots.tables import PlotInputError, check_table, float_values, select_model, select_value

logger = logging.getLogger(__name__)

#: Attack scores in panel order: summary column prefix and panel title.
MIA_SCORES = (("loss", "LOSS"), ("zlib", "zlib ratio"), ("min_k", "Min-K% (20%)"))

CHANCE_AUC = 0.5

_LEGEND_COLUMNS = 4
_DEFAULT_AUC_LIMITS = (0.4, 1.0)


def plot_mia_auc_vs_sparsity(summary: pl.DataFrame, k: int, model: str | None = None) -> tuple[Figure, dict[str, Any]]:
    """Plot membership-inference ROC AUC against sparsity, one panel per attack score, at prefix length k.

    Each panel has one line per strategy, the dense baseline (dashed line and star at sparsity 0)
    and a dotted chance line at AUC 0.5. The panels share their AUC axis.

    Args:
        summary: the summary table.
        k: the prefix length in tokens whose suffix losses the attacks score.
        model: the model to plot; may be omitted when the table contains one model.

    Returns:
        The figure and its caption facts: model, k, strategies, sparsities, the dense AUC per score,
        n_nan_auc per score, n_nonfinite_auc in all, and n_nan_loss, the NaN suffix losses summed
        over the rows drawn (None when the table lacks that column).

    Raises:
        PlotInputError: on a malformed table, an unknown model, a k with no rows, or no pruned rows.
    """
    auc_columns = [f"mia_{score}_auc" for score, _ in MIA_SCORES]
    check_table(summary, "summary", auc_columns)
    model, rows = select_model(summary, model, "summary")
    rows = select_value(rows, "k", k, "summary", model).sort(["strategy", "sparsity"])
    strategies = order_strategies(rows.get_column("strategy").unique().to_list())
    if not strategies:
        raise PlotInputError(f"the summary table has only '{DENSE_STRATEGY}' rows for model {model!r} at k={k}")
    sparsities = sorted(rows.get_column("sparsity").unique().to_list())

    dense = rows.filter(pl.col("strategy") == DENSE_STRATEGY)
    drawn = [DENSE_STRATEGY] * bool(dense.height) + strategies
    all_values = np.concatenate([float_values(rows, column) for column in auc_columns])
    limits = padded_limits(all_values, "linear", _DEFAULT_AUC_LIMITS, include=(CHANCE_AUC,))
    counts_by_score = {score: count_nonfinite(float_values(rows, f"mia_{score}_auc")) for score, _ in MIA_SCORES}
    any_nonfinite = any(counts.total for counts in counts_by_score.values())
    dense_auc: dict[str, float | None] = {}

    with figure_style():
        figure = new_figure(*figure_size(1, len(MIA_SCORES), len(strategies) + 1, _LEGEND_COLUMNS))
        axes = figure.subplots(1, len(MIA_SCORES), sharey=True, squeeze=False)[0]

        for index, (ax, (score, title)) in enumerate(zip(axes, MIA_SCORES)):
            column = f"mia_{score}_auc"
            for strategy in strategies:
                line_rows = rows.filter(pl.col("strategy") == strategy)
                draw_strategy_line(ax, float_values(line_rows, "sparsity"), float_values(line_rows, column), strategy)
            ax.axhline(CHANCE_AUC, color="#555555", linestyle=":", linewidth=0.8, zorder=1, label="_chance")

            dense_auc[score] = float(dense.get_column(column)[0]) if dense.height else None
            if dense_auc[score] is not None:
                draw_dense_baseline(ax, dense_auc[score])

            # The panels share the y axis, so every panel gets the strip once one of them needs it.
            if any_nonfinite:
                strip_middle = reserve_clip_strip(ax, "y", limits, "linear")
                series = []
                for strategy in drawn:
                    line_rows = rows.filter(pl.col("strategy") == strategy)
                    positions = float_values(line_rows, "sparsity")
                    series.append(ClipSeries(strategy, positions, float_values(line_rows, column)))
                draw_clipped_markers(ax, "y", strip_middle, series, dodge="position")
                if counts_by_score[score].total:
                    label_clip_strip(ax, "y", counts_by_score[score], "AUC")
            else:
                ax.set_ylim(*limits)

            ax.set_title(title)
            set_sparsity_axis(ax, sparsities)
            if index == 0:
                ax.set_ylabel(f"MIA ROC AUC (k = {k})")

        add_strategy_legend(figure, strategies, dense.height > 0, _LEGEND_COLUMNS)

    total = sum(counts_by_score.values(), NonFiniteCounts())
    n_nan_loss = int(rows.get_column("n_nan_loss").sum()) if "n_nan_loss" in rows.columns else None
    facts = {
        "figure": "mia_auc_vs_sparsity",
        "model": model,
        "k": k,
        "strategies": strategies,
        "sparsities": sparsities,
        "dense_auc_by_score": dense_auc,
        "n_nan_auc_by_score": {score: counts.total for score, counts in counts_by_score.items()},
        "n_nonfinite_auc": total.total,
        "n_nan_loss": n_nan_loss,
    }
    logger.info("drew MIA AUC vs sparsity for model %s at k=%d: %d non-finite AUCs", model, k, total.total)
    return figure, facts
