"""Figures of the study: extraction, perplexity and membership inference against sparsity.

Every figure function takes the summary table (or the duplication table) as a polars DataFrame and
returns a matplotlib Figure with a dict of caption facts, such as how many non-finite perplexities
it drew. Figures use the Agg canvas only, so they render on machines without a display. Each
strategy has the same colour and marker in every figure (see `memprune.plots.style`).
"""

from memprune.plots.all_figures import FIGURE_NAMES, figure_stem, make_all_figures
from memprune.plots.extraction import (
    plot_extraction_vs_duplicates,
    plot_extraction_vs_prefix_length,
    plot_extraction_vs_sparsity,
)
from memprune.plots.mia import MIA_SCORES, plot_mia_auc_vs_sparsity
from memprune.plots.perplexity import plot_extraction_vs_perplexity, plot_perplexity_vs_sparsity
from memprune.plots.saving import load_report_labels, report_labels, save_figure, write_facts
from memprune.plots.style import DENSE_STRATEGY, PRESET_STYLES, StrategyStyle, strategy_style
from memprune.plots.tables import PlotInputError

__all__ = [
    "DENSE_STRATEGY",
    "FIGURE_NAMES",
    "MIA_SCORES",
    "PRESET_STYLES",
    "PlotInputError",
    "StrategyStyle",
    "figure_stem",
    "load_report_labels",
    "make_all_figures",
    "plot_extraction_vs_duplicates",
    "plot_extraction_vs_perplexity",
    "plot_extraction_vs_prefix_length",
    "plot_extraction_vs_sparsity",
    "plot_mia_auc_vs_sparsity",
    "plot_perplexity_vs_sparsity",
    "report_labels",
    "save_figure",
    "strategy_style",
    "write_facts",
]
