"""Sample member and non-member sequences of a corpus into Parquet."""

from memprune.logs import configure_job_logging

configure_job_logging(snakemake.log[0])

from memprune.stages import run_extract  # noqa: E402

run_extract(
    corpus=snakemake.params.corpus,
    corpus_name=snakemake.wildcards.corpus,
    tokenizer_model=snakemake.params.tokenizer_model,
    tokenizer_spec=snakemake.params.tokenizer_spec,
    tokenizer_files=list(snakemake.input.tokenizer),
    window_length=snakemake.params.window_length,
    seed=snakemake.params.seed,
    members_path=snakemake.output.members,
    nonmembers_path=snakemake.output.nonmembers,
    background_path=snakemake.output.background,
    report_path=snakemake.output.report,
)
