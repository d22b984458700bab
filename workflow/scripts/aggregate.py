"""Join scores and perplexities of the whole grid into the summary tables."""

from memprune.logs import configure_job_logging

configure_job_logging(snakemake.log[0])

from memprune.stages import run_aggregate  # noqa: E402

run_aggregate(
    score_paths=list(snakemake.input.scores),
    perplexity_paths=list(snakemake.input.perplexities),
    members_paths=snakemake.params.members,
    nonmembers_paths=snakemake.params.nonmembers,
    tokenizer_loaders=snakemake.params.tokenizers,
    grid=[tuple(cell) for cell in snakemake.params.grid],
    memorization=snakemake.params.memorization,
    membership_inference=snakemake.params.membership_inference,
    summary_parquet=snakemake.output.summary,
    summary_csv=snakemake.output.summary_csv,
    duplication_parquet=snakemake.output.duplication,
)
