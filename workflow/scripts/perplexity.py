"""Measure held-out perplexity of one grid cell."""

from memprune.logs import configure_job_logging

configure_job_logging(snakemake.log[0])

from memprune.stages import run_perplexity  # noqa: E402

run_perplexity(
    model_name=snakemake.wildcards.model,
    spec=snakemake.params.model_spec,
    model_dir=snakemake.params.model_dir,
    recipe_path=snakemake.input.recipe or None,
    documents_path=snakemake.input.documents,
    settings={**snakemake.params.settings, "batch_size": snakemake.config.get("perplexity", {}).get("batch_size", 8)},
    dtype=snakemake.params.dtype,
    out_path=snakemake.output.perplexity,
    cell={"model": snakemake.wildcards.model, "strategy": snakemake.wildcards.strategy, "sparsity": int(snakemake.wildcards.sparsity)},
)
