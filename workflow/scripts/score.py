"""Score memorization of one grid cell at every prefix length."""

from memprune.logs import configure_job_logging

configure_job_logging(snakemake.log[0])

from memprune.stages import run_score  # noqa: E402

run_score(
    model_name=snakemake.wildcards.model,
    spec=snakemake.params.model_spec,
    model_dir=snakemake.params.model_dir,
    recipe_path=snakemake.input.recipe or None,
    members_path=snakemake.input.members,
    nonmembers_path=snakemake.input.nonmembers,
    memorization={**snakemake.params.memorization, "batch_size": snakemake.config["memorization"].get("batch_size", 64)},
    scores_path=snakemake.output.scores,
    cell={"model": snakemake.wildcards.model, "strategy": snakemake.wildcards.strategy, "sparsity": int(snakemake.wildcards.sparsity)},
)
