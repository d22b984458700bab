"""Helpers shared by the stage entry points: loading models, tokenizers and sample tables."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


log = logging.getLogger(__name__)


def load_scoring_tokenizer(tokenizer_model: str, tokenizer_spec: dict, tokenizer_dir: str | None):
    """Load the tokenizer of a model: the pipeline-trained one for demo models, else the model's own."""
    if tokenizer_dir is not None:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(tokenizer_dir)

    from memprune.models import ModelSpec, load_tokenizer

    return load_tokenizer(ModelSpec.from_config(tokenizer_spec, tokenizer_model))


def checkpoint_step(spec: dict) -> int | None:
    """Return the training step of a pretrained Pythia checkpoint (`stepN`, or `main`), else None."""
    from memprune.memmap import parse_revision_step

    if spec.get("source") != "pretrained":
        return None
    try:
        return parse_revision_step(spec.get("revision", "main"))
    except ValueError:
        return None


def read_sample_ids(path: str | Path) -> np.ndarray:
    """Return the `input_ids` column of a sample table as an (N, L) int64 array."""
    table = pq.read_table(path, columns=["input_ids"])
    column = table.column("input_ids").combine_chunks()
    lengths = np.diff(column.offsets.to_numpy())
    if len(lengths) and (lengths != lengths[0]).any():
        raise ValueError(f"{path}: input_ids rows differ in length ({lengths.min()} to {lengths.max()} tokens)")
    width = int(lengths[0]) if len(lengths) else 0
    return column.values.to_numpy().astype(np.int64).reshape(len(lengths), width)


def read_samples(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (sample_ids, input_ids) of a members or non-members table."""
    sample_ids = pq.read_table(path, columns=["sample_id"]).column("sample_id").to_numpy()
    return sample_ids, read_sample_ids(path)


def workflow_model_spec(model_name: str, spec: dict, model_dir: str | None, dtype: str | None = None):
    """Return the `ModelSpec` of a config model: its pipeline-built folder, or its path or hub id."""
    from memprune.models import ModelSpec

    if model_dir is not None:
        return ModelSpec(path=Path(model_dir), dtype=dtype or spec.get("dtype", "float32"))
    model_spec = ModelSpec.from_config(spec, model_name)
    if dtype is not None:
        model_spec = ModelSpec(path=model_spec.path, hub_id=model_spec.hub_id, revision=model_spec.revision, dtype=dtype)
    return model_spec


def model_identity(model_name: str, spec: dict, model_dir: str | None) -> dict:
    """Return the model fields of provenance: config key, id (hub id or folder) and revision."""
    if model_dir is not None:
        return {"model": model_name, "model_id": model_dir, "revision": None}
    return {"model": model_name, "model_id": spec.get("hub_id") or spec.get("path"), "revision": spec.get("revision", "main")}


def load_pruned_model(model_name: str, spec: dict, model_dir: str | None, recipe_path: str | None, device, dtype: str):
    """Load a model, apply its pruning recipe in place, and cast it to the compute dtype."""
    import torch

    from memprune.models import load_model
    from memprune.pruning import RecipeError, apply_recipe, read_recipe

    model = load_model(workflow_model_spec(model_name, spec, model_dir), device)
    if recipe_path is not None:
        recipe = read_recipe(recipe_path)
        recipe_model = recipe.get("provenance", {}).get("model")
        if recipe_model != model_name:
            raise RecipeError(f"recipe {recipe_path} was built for model {recipe_model!r}, not for model {model_name!r}")
        apply_recipe(model, recipe)
    return model.to(getattr(torch, dtype))
