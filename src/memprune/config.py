"""Check a workflow config before any job runs, and enumerate the grid it describes.

The JSON Schema (workflow/schemas/config.schema.yaml) rejects unknown keys and out-of-range values;
`check_schema` reports every violation with the key path, the bad value and what is allowed. The
cross-key checks here cover what a schema cannot see: references between sections, prefix lengths
against the model's context, files that must exist, and strategies against the model's real layers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

#: The unpruned baseline: strategy name and sparsity shared by every strategy of a model.
DENSE_STRATEGY = "dense"
DENSE_SPARSITY = 0


class ConfigError(ValueError):
    """The config is invalid; the message names the key, the value and what is allowed."""


def _format_path(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif text:
            text += f".{part}"
        else:
            text = str(part)
    return text or "<top level>"


def load_schema(schema_path: str | Path) -> dict:
    """Read the YAML JSON Schema of the config."""
    with open(schema_path, encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def check_schema(config: dict, schema_path: str | Path) -> None:
    """Validate `config` against the schema, listing every violation in one `ConfigError`."""
    import jsonschema

    schema = load_schema(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda error: list(map(str, error.absolute_path)))
    if not errors:
        return

    lines = []
    for error in errors:
        key = _format_path(error.absolute_path)
        if error.validator == "additionalProperties":
            allowed = sorted(error.schema.get("properties", {}))
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            lines.append(f"config key {key}: {error.message}{hint}")
        elif error.validator == "enum":
            lines.append(f"config key {key}: {error.instance!r} is not one of {error.validator_value}")
        else:
            lines.append(f"config key {key}: {error.message}")
    raise ConfigError("invalid config:\n  " + "\n  ".join(lines))


def sparsity_grid(config: dict) -> list[tuple[str, int]]:
    """Return every (strategy, sparsity percent) cell, the dense baseline first."""
    cells = [(DENSE_STRATEGY, DENSE_SPARSITY)]
    for strategy in config["strategies"]:
        cells.extend((strategy, int(sparsity)) for sparsity in sorted(config["sparsities"]))
    return cells


def grid(config: dict) -> list[tuple[str, str, int]]:
    """Return every (model, strategy, sparsity percent) cell of the config."""
    return [(model, strategy, sparsity) for model in config["models"] for strategy, sparsity in sparsity_grid(config)]


def window_length(config: dict) -> int:
    """Return the tokens each sample holds: max(prefix_lengths) + suffix_length."""
    memorization = config["memorization"]
    return max(memorization["prefix_lengths"]) + memorization["suffix_length"]


def corpus_of_model(config: dict, model: str) -> str:
    """Return the corpus a model is scored against (its `corpus`, else the only corpus)."""
    spec = config["models"][model]
    if "corpus" in spec:
        return spec["corpus"]
    corpora = list(config["corpora"])
    if len(corpora) == 1:
        return corpora[0]
    raise ConfigError(f"config key models.{model}.corpus is missing; set it to one of {', '.join(corpora)}")


def perplexity_corpus(config: dict, model: str) -> str:
    """Return the corpus whose non-member documents measure a model's perplexity."""
    return config.get("perplexity", {}).get("corpus") or corpus_of_model(config, model)


def model_context_length(config: dict, model: str) -> int:
    """Return a model's context length in tokens, without loading its weights."""
    spec = config["models"][model]
    if spec["source"] == "train":
        return int(spec["architecture"]["context_length"])

    from memprune.models import ModelSpec, model_context_length as read_context_length

    return read_context_length(ModelSpec.from_config(spec, model))


def _check_references(config: dict) -> list[str]:
    problems = []
    models = config["models"]
    corpora = config["corpora"]
    for name, corpus in corpora.items():
        if corpus["tokenizer_model"] not in models:
            problems.append(
                f"config key corpora.{name}.tokenizer_model: {corpus['tokenizer_model']!r} is not a model; "
                f"defined models: {', '.join(models)}"
            )

    for name, spec in models.items():
        if "corpus" in spec and spec["corpus"] not in corpora:
            problems.append(
                f"config key models.{name}.corpus: {spec['corpus']!r} is not a corpus; defined corpora: {', '.join(corpora)}"
            )
        if spec["source"] == "train":
            for key in ("corpus", "architecture"):
                if key not in spec:
                    problems.append(f"config key models.{name}.{key} is required when source is 'train'")
        elif ("path" in spec) == ("hub_id" in spec):
            problems.append(f"config key models.{name}: a pretrained model needs exactly one of `path` or `hub_id`")

    for name, corpus in corpora.items():
        for split in ("members", "nonmembers"):
            source = corpus[split]
            if source.get("format", corpus.get("format", "pile_jsonl")) == "pythia_memmap" and len(source["paths"]) != 1:
                problems.append(
                    f"config key corpora.{name}.{split}.paths: a pythia_memmap split takes one path prefix "
                    f"(of document.bin / document.idx), got {len(source['paths'])}"
                )
    for name, spec in models.items():
        architecture = spec.get("architecture")
        if architecture and architecture["hidden_size"] % architecture["num_heads"]:
            problems.append(
                f"config key models.{name}.architecture: hidden_size {architecture['hidden_size']} is not divisible "
                f"by num_heads {architecture['num_heads']}"
            )

    perplexity = config.get("perplexity", {})
    perplexity_corpora = {perplexity_corpus(config, model) for model in models if _has_corpus(config, model)}
    for name in sorted(perplexity_corpora & set(corpora)):
        source = corpora[name]["nonmembers"]
        file_format = source.get("format", corpora[name].get("format", "pile_jsonl"))
        if file_format != "pile_jsonl":
            problems.append(
                f"config key corpora.{name}.nonmembers.format: perplexity is measured on whole non-member documents, "
                f"so they must be pile_jsonl shards, not {file_format}"
            )
    if "corpus" in perplexity and perplexity["corpus"] not in corpora:
        problems.append(
            f"config key perplexity.corpus: {perplexity['corpus']!r} is not a corpus; defined corpora: {', '.join(corpora)}"
        )

    if DENSE_STRATEGY in config["strategies"]:
        problems.append(f"config key strategies.{DENSE_STRATEGY}: the name is reserved for the unpruned baseline")
    figures = config.get("figures", {})
    prefix_lengths = config["memorization"]["prefix_lengths"]
    if "k" in figures and figures["k"] not in prefix_lengths:
        problems.append(f"config key figures.k: {figures['k']} is not in memorization.prefix_lengths {prefix_lengths}")
    if "sparsity" in figures and figures["sparsity"] not in config["sparsities"]:
        problems.append(f"config key figures.sparsity: {figures['sparsity']} is not in sparsities {config['sparsities']}")
    return problems


def _has_corpus(config: dict, model: str) -> bool:
    try:
        corpus_of_model(config, model)
    except ConfigError:
        return False
    return True


def _check_files(config: dict, base_dir: Path) -> tuple[list[str], list[str]]:
    """Return (missing files, files present but unusable) of every corpus."""
    missing_files, problems = [], []
    for name, corpus in config["corpora"].items():
        for split in ("members", "nonmembers"):
            source = corpus[split]
            file_format = source.get("format", corpus.get("format", "pile_jsonl"))
            for index, path in enumerate(source["paths"]):
                key = f"config key corpora.{name}.{split}.paths[{index}]"
                candidates = [f"{path}.idx", f"{path}.bin"] if file_format == "pythia_memmap" else [path]
                missing = [candidate for candidate in candidates if not (base_dir / candidate).is_file()]
                for candidate in missing:
                    missing_files.append(f"{key}: file not found: {candidate} (format {file_format})")
                if not missing:
                    problems += _check_token_file(config, base_dir / path, file_format, source, key)
    return missing_files, problems


def _check_token_file(config: dict, path: Path, file_format: str, source: dict, key: str) -> list[str]:
    """Open a memmap or token Parquet file far enough to check its header and stored length."""
    needed = window_length(config) + int(source.get("token_offset", 0))
    try:
        if file_format == "pythia_memmap":
            from memprune.memmap import MMapIndexedDataset

            MMapIndexedDataset(path)
        elif file_format == "token_parquet":
            from memprune.token_parquet import read_token_parquet

            read_token_parquet(
                path,
                tokens_column=source.get("tokens_column", "auto"),
                index_column=source.get("index_column", "auto"),
                needed_length=needed,
            )
    except (OSError, ValueError) as error:
        return [f"{key}: {error}"]
    return []


def _check_models(config: dict) -> tuple[list[str], set[str]]:
    """Check that every pretrained model is on local disk; return problems and the models that failed."""
    from memprune.models import ModelSpec, check_model_available

    problems, unavailable = [], set()
    for name, spec in config["models"].items():
        if spec["source"] != "pretrained" or ("path" in spec) == ("hub_id" in spec):
            continue
        try:
            check_model_available(ModelSpec.from_config(spec, name))
        except (OSError, ValueError) as error:
            problems.append(f"config key models.{name}: {error}")
            unavailable.add(name)
    return problems, unavailable


def _check_lengths(config: dict, skip: set[str]) -> list[str]:
    problems = []
    memorization = config["memorization"]
    needed = window_length(config)
    for name in config["models"]:
        if name in skip:
            continue
        try:
            context = model_context_length(config, name)
        except (OSError, ValueError) as error:
            problems.append(f"model {name}: {error}")
            continue
        if needed > context:
            problems.append(
                f"config key memorization.prefix_lengths: max(prefix_lengths) + suffix_length = "
                f"{max(memorization['prefix_lengths'])} + {memorization['suffix_length']} = {needed} tokens exceeds "
                f"the context length {context} of model {name}"
            )
        window = config.get("perplexity", {}).get("window")
        if window is not None and window > context:
            problems.append(
                f"config key perplexity.window: {window} tokens exceeds the context length {context} of model {name}"
            )
    return problems


def check_config(config: dict, base_dir: str | Path = ".", require_inputs: bool = True) -> set[str]:
    """Run the cross-key checks on a schema-valid config; raise one `ConfigError` listing all problems.

    Args:
        require_inputs: when False, as in a dry run, missing data files and models that are not on
            local disk are logged as warnings instead of raised. The paper grid can then be planned on
            a machine without the data or the checkpoints.

    Returns:
        The models whose checkpoints are not available (empty when `require_inputs` is True).
    """
    base_dir = Path(base_dir)
    model_problems, unavailable = _check_models(config)
    missing_files, file_problems = _check_files(config, base_dir)
    input_problems = missing_files + model_problems
    problems = _check_references(config) + file_problems + _check_lengths(config, skip=unavailable)
    if require_inputs:
        problems += input_problems
    else:
        for problem in input_problems:
            logger.warning("dry run, not checked further: %s", problem)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return unavailable if not require_inputs else set()


def dump_section(config: dict, *keys: str) -> str:
    """Return a canonical JSON string of the named config sections (for params and digests)."""
    return json.dumps({key: config.get(key) for key in keys}, sort_keys=True)


def skeleton_model(config: dict, model: str):
    """Build a model's module tree on the meta device: real names and shapes, no weights, no memory."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = config["models"][model]
    if spec["source"] == "train":
        from memprune.demo_model import gpt_neox_config

        model_config = gpt_neox_config(spec["architecture"], spec.get("tokenizer", {}).get("vocab_size", 4096), 0)
    else:
        from memprune.models import ModelSpec, resolve_model_folder

        model_config = AutoConfig.from_pretrained(resolve_model_folder(ModelSpec.from_config(spec, model)), trust_remote_code=False)

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(model_config, trust_remote_code=False)


def check_strategies(config: dict, skip_models: Iterable[str] = ()) -> None:
    """Check every strategy spec, then resolve it against each model's real module names.

    Models in `skip_models` (not on local disk during a dry run) are checked by spec only.
    """
    from memprune.strategies import StrategyError, resolve_strategy, validate_strategy_spec

    problems = []
    for name, spec in config["strategies"].items():
        try:
            validate_strategy_spec(name, spec)
        except StrategyError as error:
            problems.append(str(error))
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))

    for model in config["models"]:
        if model in skip_models:
            continue
        skeleton = skeleton_model(config, model)
        for name, spec in config["strategies"].items():
            try:
                resolve_strategy(skeleton, name, spec)
            except StrategyError as error:
                problems.append(f"model {model}: {error}")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
