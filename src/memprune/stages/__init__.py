"""Entry points of the workflow's stages: read inputs, call the library, write the artifacts.

The rule scripts under workflow/scripts are thin wrappers around these functions, which take plain
paths and config mappings, so each stage can be run and tested without Snakemake.
"""

from memprune.stages.common import read_samples
from memprune.stages.data import run_extract, run_perplexity_documents, run_train_tokenizer
from memprune.stages.evaluation import run_export, run_perplexity, run_prune, run_score
from memprune.stages.reporting import run_aggregate, run_figures
from memprune.stages.training import run_train_model

__all__ = [
    "read_samples",
    "run_aggregate",
    "run_export",
    "run_extract",
    "run_figures",
    "run_perplexity",
    "run_perplexity_documents",
    "run_prune",
    "run_score",
    "run_train_model",
    "run_train_tokenizer",
]
