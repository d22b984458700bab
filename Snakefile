# memprune: how pruning changes verbatim memorization in causal language models.
#
# Reproduces and extends Gupta et al. 2025, "Pruning as a Defense: Reducing Memorization in Large
# Language Models" (arXiv 2502.15796). Run `snakemake --cores 2` for the embedded demo, or
# `snakemake --configfile config/paper.yaml ...` for the paper's Pythia grid.

from snakemake.utils import min_version

min_version("9.0")


# The demo config is the default; a --configfile given on the command line replaces it whole
# (Snakemake would otherwise merge the two, mixing the demo's models into the paper grid).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# ---- Configuration, checked before any job runs ----------------------------------------------


include: "workflow/rules/common.smk"


# ---- Stages ------------------------------------------------------------------------------------


include: "workflow/rules/data.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/prune.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"


# ---- Targets -----------------------------------------------------------------------------------


rule all:
    default_target: True
    input:
        rules.aggregate.output,
        rules.figures.output,
