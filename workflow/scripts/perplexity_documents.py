"""Tokenize the held-out documents that perplexity is measured on."""

from memprune.logs import configure_job_logging

configure_job_logging(snakemake.log[0])

from memprune.stages import run_perplexity_documents  # noqa: E402

run_perplexity_documents(
    corpus=snakemake.params.corpus,
    corpus_name=snakemake.wildcards.corpus,
    tokenizer_model=snakemake.params.tokenizer_model,
    tokenizer_spec=snakemake.params.tokenizer_spec,
    tokenizer_files=list(snakemake.input.tokenizer),
    max_tokens=snakemake.params.max_tokens,
    out_path=snakemake.output.documents,
)
