"""Rendering of every figure for every model of a summary table, as the workflow's figures stage does."""

import logging
import os
from pathlib import Path

import polars as pl
from tqdm import tqdm

from memprune.plots.extraction import (
    plot_extraction_vs_duplicates,
    plot_extraction_vs_prefix_length,
    plot_extraction_vs_sparsity,
)
from memprune.plots.mia import plot_mia_auc_vs_sparsity
from memprune.plots.perplexity import plot_extraction_vs_perplexity, plot_perplexity_vs_sparsity
from memprune.plots.saving import save_figure, write_facts
from memprune.plots.tables import PlotInputError, require_columns

logger = logging.getLogger(__name__)

#: Figure names, which are also their file stems and the names of their report captions.
FIGURE_NAMES = (
    "extraction_vs_sparsity",
    "extraction_vs_prefix_length",
    "perplexity_vs_sparsity",
    "extraction_vs_perplexity",
    "mia_auc_vs_sparsity",
    "extraction_vs_duplicates",
)

DUPLICATES_FIGURE = "extraction_vs_duplicates"


def figure_stem(out_dir: str | os.PathLike, model: str, name: str) -> Path:
    """Return the output path of one figure without extension: `<out_dir>/<model>/<name>`."""
    return Path(out_dir) / model / name


def _check_model_name(model: str) -> None:
    if not model or model in {".", ".."} or "/" in model or "\\" in model:
        raise PlotInputError(
            f"model name {model!r} cannot be a folder name for its figures; use a config key without slashes"
        )


def make_all_figures(
    summary: pl.DataFrame,
    duplication: pl.DataFrame | None,
    out_dir: str | os.PathLike,
    chosen_k: int,
    chosen_sparsity: int,
) -> list[Path]:
    """Render and save every figure for every model in `summary`.

    Each figure goes to `figure_stem(out_dir, model, name)` plus `.pdf`, `.png` and `.json` (its
    caption facts).

    Args:
        summary: the summary table.
        duplication: the duplication table, or None to skip the duplicates figure (logged).
        out_dir: the folder that receives one subfolder per model.
        chosen_k: the prefix length (tokens) of the figures drawn at one k.
        chosen_sparsity: the sparsity (integer percent) of the figures drawn at one sparsity.

    Returns:
        The paths written, in the order of models, then FIGURE_NAMES, then PDF, PNG, JSON.

    Raises:
        PlotInputError: when a table is empty or malformed, a model name has a slash, or a model
            has no rows at `chosen_k` or `chosen_sparsity`.
    """
    require_columns(summary, ["model"], "summary")
    models = sorted(summary.get_column("model").unique().to_list())
    if not models:
        raise PlotInputError("the summary table is empty, so there is nothing to plot")
    for model in models:
        _check_model_name(model)

    names = list(FIGURE_NAMES)
    if duplication is None:
        names.remove(DUPLICATES_FIGURE)
        logger.warning("no duplication table was given, so the %s figure is skipped", DUPLICATES_FIGURE)

    renderers = {
        "extraction_vs_sparsity": lambda model: plot_extraction_vs_sparsity(summary, model=model),
        "extraction_vs_prefix_length": lambda model: plot_extraction_vs_prefix_length(
            summary, chosen_sparsity, model=model
        ),
        "perplexity_vs_sparsity": lambda model: plot_perplexity_vs_sparsity(summary, model=model),
        "extraction_vs_perplexity": lambda model: plot_extraction_vs_perplexity(summary, chosen_k, model=model),
        "mia_auc_vs_sparsity": lambda model: plot_mia_auc_vs_sparsity(summary, chosen_k, model=model),
        "extraction_vs_duplicates": lambda model: plot_extraction_vs_duplicates(
            duplication, chosen_k, chosen_sparsity, model=model
        ),
    }

    jobs = [(model, name) for model in models for name in names]
    logger.info("rendering %d figures for %d model(s) into %s", len(jobs), len(models), out_dir)
    paths: list[Path] = []
    for model, name in tqdm(jobs, desc="figures", unit="figure"):
        figure, facts = renderers[name](model)
        stem = figure_stem(out_dir, model, name)
        paths.extend(save_figure(figure, stem))
        paths.append(write_facts(facts, stem))

    logger.info("wrote %d files for %d figures", len(paths), len(jobs))
    return paths
