# The paper's figures and this project's extensions, as PDF and PNG per model, with caption facts.


rule figures:
    input:
        summary=rules.aggregate.output.summary,
        duplication=rules.aggregate.output.duplication,
    output:
        **{
            f"{model}__{name}_png": report(
                f"{RESULTS}/figures/{model}/{name}.png",
                caption=f"../report/{name}.rst",
                category="Figures",
                subcategory=model,
                labels=figure_labels(model, name),
            )
            for model, name in figure_names()
        },
        **{f"{model}__{name}_pdf": f"{RESULTS}/figures/{model}/{name}.pdf" for model, name in figure_names()},
        **{f"{model}__{name}_facts": f"{RESULTS}/figures/{model}/{name}.json" for model, name in figure_names()},
    params:
        out_dir=lambda wildcards, output: str(Path(output[0]).parents[1]),
        k=config.get("figures", {}).get("k", max(config["memorization"]["prefix_lengths"])),
        sparsity=config.get("figures", {}).get("sparsity", sorted(config["sparsities"])[len(config["sparsities"]) // 2]),
    conda:
        "../../envs/memprune.yaml"
    log:
        f"{RESULTS}/logs/figures.log",
    threads: 1
    script:
        "../scripts/figures.py"
