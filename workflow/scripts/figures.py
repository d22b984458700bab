"""Render every figure from the summary tables."""

from memprune.logs import configure_job_logging

configure_job_logging(snakemake.log[0])

from memprune.stages import run_figures  # noqa: E402

run_figures(
    summary_path=snakemake.input.summary,
    duplication_path=snakemake.input.duplication,
    out_dir=snakemake.params.out_dir,
    k=snakemake.params.k,
    sparsity=snakemake.params.sparsity,
    expected=list(snakemake.output),
)
