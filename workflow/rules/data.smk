# Member and non-member sequences, sampled from a corpus with the scoring model's tokenizer.


rule extract:
    input:
        data=lambda wildcards: corpus_input_files(wildcards.corpus),
        tokenizer=lambda wildcards: tokenizer_files(config["corpora"][wildcards.corpus]["tokenizer_model"]),
    output:
        members=f"{RESULTS}/data/{{corpus}}/members.parquet",
        nonmembers=f"{RESULTS}/data/{{corpus}}/nonmembers.parquet",
        background=f"{RESULTS}/data/{{corpus}}/background.parquet",
        report=f"{RESULTS}/data/{{corpus}}/extraction.json",
    params:
        corpus=lambda wildcards: config["corpora"][wildcards.corpus],
        tokenizer_model=lambda wildcards: config["corpora"][wildcards.corpus]["tokenizer_model"],
        tokenizer_spec=lambda wildcards: config["models"][config["corpora"][wildcards.corpus]["tokenizer_model"]],
        window_length=memprune_config.window_length(config),
        seed=config["seed"],
    conda:
        "../../envs/memprune.yaml"
    log:
        f"{RESULTS}/logs/extract/{{corpus}}.log",
    threads: 1
    script:
        "../scripts/extract.py"
