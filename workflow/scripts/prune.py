"""Build the pruning recipe of one grid cell."""

from memprune.logs import configure_job_logging

configure_job_logging(snakemake.log[0])

from memprune.stages import run_prune  # noqa: E402

run_prune(
    model_name=snakemake.wildcards.model,
    spec=snakemake.params.model_spec,
    model_dir=snakemake.params.model_dir,
    strategy_name=snakemake.wildcards.strategy,
    strategy=snakemake.params.strategy,
    sparsity_percent=int(snakemake.wildcards.sparsity),
    seed=snakemake.params.seed,
    recipe_path=snakemake.output.recipe,
)
