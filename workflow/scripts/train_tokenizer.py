"""Train the demo's byte-level BPE tokenizer on the member split of its corpus."""

from memprune.logs import configure_job_logging

configure_job_logging(snakemake.log[0])

from memprune.stages import run_train_tokenizer  # noqa: E402

run_train_tokenizer(
    shards=list(snakemake.input.shards),
    vocab_size=snakemake.params.vocab_size,
    out_dir=snakemake.output.tokenizer.rsplit("/", 1)[0],
)
