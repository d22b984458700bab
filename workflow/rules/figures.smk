# The paper's figures and this project's extensions, as PDF and PNG per model.


rule figures:
    input:
        summary=rules.aggregate.output.summary,
        duplication=rules.aggregate.output.duplication,
    output:
        [
            report(
                f"{RESULTS}/figures/{model}/{name}.png",
                caption=f"../report/{name}.rst",
                category="Figures",
                subcategory=model,
            )
            for model, name in figure_names()
        ],
        [f"{RESULTS}/figures/{model}/{name}.pdf" for model, name in figure_names()],
    params:
        out_dir=f"{RESULTS}/figures",
        k=config.get("figures", {}).get("k", max(config["memorization"]["prefix_lengths"])),
        sparsity=config.get("figures", {}).get("sparsity", sorted(config["sparsities"])[len(config["sparsities"]) // 2]),
    log:
        f"{RESULTS}/logs/figures.log",
    threads: 1
    script:
        "../scripts/figures.py"
