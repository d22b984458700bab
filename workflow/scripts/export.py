"""Save one pruned variant as a normal save_pretrained checkpoint."""

from memprune.logs import configure_job_logging

configure_job_logging(snakemake.log[0])

from memprune.stages import run_export  # noqa: E402

run_export(
    model_name=snakemake.wildcards.model,
    spec=snakemake.params.model_spec,
    model_dir=snakemake.params.model_dir,
    recipe_path=snakemake.input.recipe or None,
    out_dir=snakemake.output.config.rsplit("/", 1)[0],
)
