# The demo's tokenizer and model, trained on the embedded corpus (pretrained models skip these).


rule train_tokenizer:
    input:
        shards=lambda wildcards: split_paths(config["models"][wildcards.model]["corpus"], "members"),
    output:
        tokenizer=f"{RESULTS}/tokenizers/{{model}}/tokenizer.json",
        tokenizer_config=f"{RESULTS}/tokenizers/{{model}}/tokenizer_config.json",
    params:
        vocab_size=lambda wildcards: config["models"][wildcards.model].get("tokenizer", {}).get("vocab_size", 4096),
    conda:
        "../../envs/memprune.yaml"
    log:
        f"{RESULTS}/logs/train_tokenizer/{{model}}.log",
    threads: 1
    script:
        "../scripts/train_tokenizer.py"


rule train_model:
    input:
        members=lambda wildcards: samples_of_model(wildcards.model, "members"),
        nonmembers=lambda wildcards: samples_of_model(wildcards.model, "nonmembers"),
        background=lambda wildcards: samples_of_model(wildcards.model, "background"),
        tokenizer=rules.train_tokenizer.output.tokenizer,
    output:
        config=f"{RESULTS}/models/{{model}}/config.json",
        weights=f"{RESULTS}/models/{{model}}/model.safetensors",
        tokenizer=f"{RESULTS}/models/{{model}}/tokenizer.json",
        history=f"{RESULTS}/models/{{model}}/training.json",
    params:
        spec=model_spec,
        prefix_lengths=config["memorization"]["prefix_lengths"],
        suffix_length=config["memorization"]["suffix_length"],
        seed=config["seed"],
    conda:
        "../../envs/memprune.yaml"
    log:
        f"{RESULTS}/logs/train_model/{{model}}.log",
    threads: 2
    resources:
        runtime=30,
    script:
        "../scripts/train_model.py"
