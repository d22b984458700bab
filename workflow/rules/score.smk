# Memorization scores of every grid cell: one row per sample and prefix length.


rule score:
    input:
        model=lambda wildcards: model_files(wildcards.model),
        recipe=recipe_input,
        members=lambda wildcards: samples_of_model(wildcards.model, "members"),
        nonmembers=lambda wildcards: samples_of_model(wildcards.model, "nonmembers"),
    output:
        scores=f"{RESULTS}/scores/{{model}}/{{strategy}}/{{sparsity}}.parquet",
    params:
        model_spec=model_spec,
        model_dir=lambda wildcards: model_dir(wildcards.model),
        memorization=without_batch_size("memorization"),
    conda:
        "../../envs/memprune.yaml"
    log:
        f"{RESULTS}/logs/score/{{model}}/{{strategy}}/{{sparsity}}.log",
    threads: 1
    resources:
        gpu=1,
        mem_mb=model_resources_mem_mb,
        runtime=model_resources_runtime,
    script:
        "../scripts/score.py"
