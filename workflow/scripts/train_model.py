"""Train the demo GPT-NeoX on the member sequences and save it as a save_pretrained folder."""

from memprune.logs import configure_job_logging

configure_job_logging(snakemake.log[0])

from memprune.stages import run_train_model  # noqa: E402

run_train_model(
    model_name=snakemake.wildcards.model,
    spec=snakemake.params.spec,
    memorization={"prefix_lengths": snakemake.params.prefix_lengths, "suffix_length": snakemake.params.suffix_length},
    seed=snakemake.params.seed,
    members_path=snakemake.input.members,
    nonmembers_path=snakemake.input.nonmembers,
    background_path=snakemake.input.background,
    tokenizer_dir=snakemake.input.tokenizer.rsplit("/", 1)[0],
    out_dir=snakemake.output.config.rsplit("/", 1)[0],
    history_path=snakemake.output.history,
)
