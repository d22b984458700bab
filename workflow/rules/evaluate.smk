# Held-out perplexity of every grid cell, and the summary tables that join it with the scores.


rule perplexity_documents:
    input:
        data=lambda wildcards: corpus_input_files(wildcards.corpus),
        tokenizer=lambda wildcards: tokenizer_files(config["corpora"][wildcards.corpus]["tokenizer_model"]),
    output:
        documents=f"{RESULTS}/data/{{corpus}}/perplexity_documents.parquet",
    params:
        corpus=lambda wildcards: config["corpora"][wildcards.corpus],
        tokenizer_model=lambda wildcards: config["corpora"][wildcards.corpus]["tokenizer_model"],
        tokenizer_spec=lambda wildcards: config["models"][config["corpora"][wildcards.corpus]["tokenizer_model"]],
        max_tokens=config.get("perplexity", {}).get("max_tokens"),
    conda:
        "../../envs/memprune.yaml"
    log:
        f"{RESULTS}/logs/perplexity_documents/{{corpus}}.log",
    threads: 1
    script:
        "../scripts/perplexity_documents.py"


rule perplexity:
    input:
        model=lambda wildcards: model_files(wildcards.model),
        recipe=recipe_input,
        documents=lambda wildcards: perplexity_documents_of_model(wildcards.model),
    output:
        perplexity=f"{RESULTS}/perplexity/{{model}}/{{strategy}}/{{sparsity}}.json",
    params:
        model_spec=model_spec,
        model_dir=lambda wildcards: model_dir(wildcards.model),
        settings=without_batch_size("perplexity"),
        dtype=config["memorization"].get("dtype", "float32"),
    conda:
        "../../envs/memprune.yaml"
    log:
        f"{RESULTS}/logs/perplexity/{{model}}/{{strategy}}/{{sparsity}}.log",
    threads: 1
    resources:
        gpu=1,
        mem_mb=model_resources_mem_mb,
        runtime=model_resources_runtime,
    script:
        "../scripts/perplexity.py"


rule aggregate:
    input:
        scores=all_scores(),
        perplexities=all_perplexities(),
        members=[samples_of_model(model, "members") for model in config["models"]],
        nonmembers=[samples_of_model(model, "nonmembers") for model in config["models"]],
        tokenizers=[path for model in config["models"] for path in tokenizer_files(model)],
    output:
        summary=report(
            f"{RESULTS}/tables/summary.parquet",
            caption="../report/summary.rst",
            category="Tables",
        ),
        summary_csv=report(
            f"{RESULTS}/tables/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
        ),
        duplication=f"{RESULTS}/tables/by_duplicates.parquet",
    params:
        grid=GRID,
        members={model: samples_of_model(model, "members") for model in config["models"]},
        nonmembers={model: samples_of_model(model, "nonmembers") for model in config["models"]},
        tokenizers={model: tokenizer_loader(model) for model in config["models"]},
        memorization=without_batch_size("memorization"),
        membership_inference=config.get("membership_inference", {}),
    conda:
        "../../envs/memprune.yaml"
    log:
        f"{RESULTS}/logs/aggregate.log",
    threads: 1
    script:
        "../scripts/aggregate.py"
