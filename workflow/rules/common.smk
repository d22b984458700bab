# Config validation, the grid, and the input functions shared by every stage.

import json
import logging
import sys
from pathlib import Path

from snakemake.utils import validate

from memprune import config as memprune_config

memprune_config.check_schema(config, workflow.source_path("../schemas/config.schema.yaml"))
validate(config, workflow.source_path("../schemas/config.schema.yaml"))
_config_log_handler = logging.StreamHandler()
_config_log_handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
logging.getLogger("memprune").addHandler(_config_log_handler)
logging.getLogger("memprune").setLevel(logging.WARNING)
logging.getLogger("memprune").propagate = False
UNAVAILABLE_MODELS = memprune_config.check_config(config, base_dir=Path.cwd(), require_inputs=not workflow.output_settings.dryrun)
memprune_config.check_strategies(config, skip_models=UNAVAILABLE_MODELS)

RESULTS = config["results_dir"].rstrip("/")
GRID = memprune_config.grid(config)


wildcard_constraints:
    model="[^/]+",
    strategy="[^/]+",
    corpus="[^/]+",
    sparsity="[0-9]+",


def model_spec(wildcards):
    return config["models"][wildcards.model]


def is_trained(model):
    return config["models"][model]["source"] == "train"


def model_files(model):
    """Files of a model folder built by the pipeline; empty for pretrained models, loaded as they are."""
    if not is_trained(model):
        return []
    return [f"{RESULTS}/models/{model}/config.json", f"{RESULTS}/models/{model}/model.safetensors"]


def model_dir(model):
    return f"{RESULTS}/models/{model}" if is_trained(model) else None


def tokenizer_files(model):
    """Tokenizer files the pipeline trains for a demo model; empty for pretrained models."""
    if not is_trained(model):
        return []
    return [f"{RESULTS}/tokenizers/{model}/tokenizer.json"]


def split_paths(corpus, split):
    return config["corpora"][corpus][split]["paths"]


def corpus_input_files(corpus):
    """Every data file a corpus reads, for both splits (memmap prefixes expand to .idx and .bin).

    A dry run only plans, so files that are not on this machine are left out of the plan; the
    config check has already named them in a warning, and a real run rejects them.
    """
    files = []
    spec = config["corpora"][corpus]
    for split in ("members", "nonmembers"):
        file_format = spec[split].get("format", spec.get("format", "pile_jsonl"))
        for path in spec[split]["paths"]:
            files += [f"{path}.idx", f"{path}.bin"] if file_format == "pythia_memmap" else [path]
    if workflow.output_settings.dryrun:
        files = [path for path in files if Path(path).exists()]
    return files


def samples_of_model(model, split):
    return f"{RESULTS}/data/{memprune_config.corpus_of_model(config, model)}/{split}.parquet"


def recipe_input(wildcards):
    """The pruning recipe of a cell; the dense baseline has none."""
    if wildcards.strategy == memprune_config.DENSE_STRATEGY:
        if int(wildcards.sparsity) != memprune_config.DENSE_SPARSITY:
            raise ValueError(f"the dense baseline has sparsity 0 only, not {wildcards.sparsity}")
        return []
    return f"{RESULTS}/pruning/{wildcards.model}/{wildcards.strategy}/{wildcards.sparsity}.json"


def model_resources_mem_mb(wildcards, attempt):
    """Memory for a GPU job: the weights three times over plus a working margin, more on retries."""
    size_gb = config["models"][wildcards.model].get("size_gb", 1)
    return int((3 * size_gb + 2) * 1024 * attempt)


def model_resources_runtime(wildcards, attempt):
    """Minutes for a GPU job, scaled by model size."""
    size_gb = config["models"][wildcards.model].get("size_gb", 1)
    return int((20 + 10 * size_gb) * attempt)


def all_scores():
    return [f"{RESULTS}/scores/{m}/{s}/{p}.parquet" for m, s, p in GRID]


def all_perplexities():
    return [f"{RESULTS}/perplexity/{m}/{s}/{p}.json" for m, s, p in GRID]


def perplexity_documents_of_model(model):
    return f"{RESULTS}/data/{memprune_config.perplexity_corpus(config, model)}/perplexity_documents.parquet"


def tokenizer_loader(model):
    """Arguments of memprune.stages.load_scoring_tokenizer for a model's tokenizer."""
    tokenizer_dir = f"{RESULTS}/tokenizers/{model}" if is_trained(model) else None
    return [model, config["models"][model], tokenizer_dir]


def cell_of(wildcards):
    return {"model": wildcards.model, "strategy": wildcards.strategy, "sparsity": int(wildcards.sparsity)}


FIGURES = [
    "extraction_vs_sparsity",
    "extraction_vs_prefix_length",
    "perplexity_vs_sparsity",
    "extraction_vs_perplexity",
    "mia_auc_vs_sparsity",
]


def figure_names():
    """(model, figure) pairs; the duplication figure exists where training duplication counts are known."""
    pairs = []
    for model in config["models"]:
        pairs += [(model, name) for name in FIGURES]
        corpus = config["corpora"][memprune_config.corpus_of_model(config, model)]
        if corpus.get("duplicates_schedule"):
            pairs.append((model, "extraction_vs_duplicates"))
    return pairs


def without_batch_size(section):
    """A config section minus `batch_size`, which never changes the numbers, so changing it reruns nothing.

    Rule scripts read the batch size from the config instead of from params.
    """
    return {key: value for key, value in config.get(section, {}).items() if key != "batch_size"}


def figure_labels(model, name):
    """Report labels of one figure, read from the caption facts it was saved with."""

    def labels(wildcards, output):
        from memprune.plots.saving import load_report_labels

        return load_report_labels(output[f"{model}__{name}_facts"])

    return labels
