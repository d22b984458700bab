"""Measure how pruning changes verbatim memorization in causal language models.

The library behind the Snakemake workflow: data sources, demo model training, pruning recipes,
memorization scoring, perplexity, membership inference, summary tables and figures. It never
imports snakemake, so every part can be used and tested on its own.
"""

__version__ = "0.1.0"
