# Pruning recipes: which weights each strategy removes at each sparsity, rebuilt exactly on load.


rule prune:
    input:
        model=lambda wildcards: model_files(wildcards.model),
    output:
        recipe=f"{RESULTS}/pruning/{{model}}/{{strategy}}/{{sparsity}}.json",
    params:
        model_spec=model_spec,
        model_dir=lambda wildcards: model_dir(wildcards.model),
        strategy=lambda wildcards: config["strategies"][wildcards.strategy],
        seed=config["seed"],
    conda:
        "../../envs/memprune.yaml"
    log:
        f"{RESULTS}/logs/prune/{{model}}/{{strategy}}/{{sparsity}}.log",
    threads: 1
    resources:
        gpu=1,
        mem_mb=model_resources_mem_mb,
        runtime=model_resources_runtime,
    script:
        "../scripts/prune.py"


# A pruned variant saved as a normal checkpoint, for reuse outside the workflow.
rule export:
    input:
        model=lambda wildcards: model_files(wildcards.model),
        recipe=recipe_input,
    output:
        config=f"{RESULTS}/export/{{model}}/{{strategy}}/{{sparsity}}/config.json",
        weights=f"{RESULTS}/export/{{model}}/{{strategy}}/{{sparsity}}/model.safetensors",
    params:
        model_spec=model_spec,
        model_dir=lambda wildcards: model_dir(wildcards.model),
    conda:
        "../../envs/memprune.yaml"
    log:
        f"{RESULTS}/logs/export/{{model}}/{{strategy}}/{{sparsity}}.log",
    threads: 1
    resources:
        mem_mb=model_resources_mem_mb,
    script:
        "../scripts/export.py"
