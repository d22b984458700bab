"""Pruning recipes: build an exact, JSON-serialisable mask description, apply it in place, export.

A recipe records, for every pruned weight tensor, what rebuilds its boolean mask exactly:

- ``magnitude``: ``threshold`` (the exact cut magnitude) and ``tied_pruned`` (how many elements
  with ``|w| == threshold`` are pruned, taken in flat index order). Everything with
  ``|w| < threshold`` is pruned too.
- ``random``: a per-tensor ``seed``. The scores are ``torch.rand`` draws from a CPU
  ``torch.Generator`` seeded with it, cut by ``threshold`` and ``tied_pruned`` the same way.

Counts are exact: ``round(sparsity * n)`` elements are pruned, with Python's ``round`` (half to
even, so 0.5 of 5 elements prunes 2). The count applies per tensor for scope ``per_tensor`` and
over the whole selected set for scope ``global``, where ties at the cut go to earlier tensors
first (in ``model.named_modules()`` order), then to lower flat indices.

Magnitudes are compared as exact values. float32 weights are compared in float32, bfloat16 and
float16 weights are upcast per tensor to float32 (which represents them exactly), and float64
weights (or a global cut shared with them) are compared in float64.
"""

import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from memprune.strategies import (
    CRITERIA,
    find_block_list,
    resolve_layer_range,
    resolve_strategy,
    validate_strategy_spec,
)
from memprune.threshold import find_cut, select_smallest

logger = logging.getLogger(__name__)

RECIPE_FILENAME = "pruning_recipe.json"
PRUNABLE_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
TENSOR_ENTRY_KEYS = ("name", "numel", "pruned", "shape", "dtype", "threshold", "tied_pruned")


class RecipeError(ValueError):
    """A recipe is malformed, or does not match the model it is applied to."""


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def tensor_seed(seed: int, tensor_name: str) -> int:
    """Derive a stable 63-bit generator seed from the recipe seed and a tensor name.

    Uses BLAKE2b rather than Python's ``hash``, which is salted per process for strings.
    """
    digest = hashlib.blake2b(f"{seed}:{tensor_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def _magnitude_dtype(weight_dtype: torch.dtype, threshold: float | None = None) -> torch.dtype:
    """Choose the float dtype in which |w| is compared exactly."""
    if weight_dtype == torch.float64:
        return torch.float64
    if threshold is not None and float(torch.tensor(threshold, dtype=torch.float32).item()) != threshold:
        return torch.float64
    return torch.float32


def _magnitude_scores(weight: torch.Tensor, score_dtype: torch.dtype) -> torch.Tensor:
    return weight.detach().abs().to(score_dtype)


def _random_scores(weight: torch.Tensor, seed: int) -> torch.Tensor:
    # A CPU generator draws the same numbers whatever device the weight is on.
    generator = torch.Generator(device="cpu").manual_seed(seed)
    scores = torch.rand(weight.shape, generator=generator, dtype=torch.float32)
    return scores.to(weight.device)


def _check_sparsity(sparsity) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not math.isfinite(sparsity):
        raise ValueError(f"sparsity must be a number with 0 <= sparsity < 1, got {sparsity!r}")
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity {sparsity!r} is out of range; expected 0 <= sparsity < 1")
    return float(sparsity)


def build_recipe(model: nn.Module, name: str, spec: dict, sparsity: float, seed: int) -> dict:
    """Build the pruning recipe of a strategy at a target sparsity, on the device the model lives on.

    Args:
        model: the causal LM to prune (it is not modified).
        name: the strategy's name.
        spec: the strategy spec (see ``memprune.strategies``).
        sparsity: the target fraction of pruned weights, 0 <= sparsity < 1.
        seed: the seed of the ``random`` criterion (recorded for both criteria).

    Returns:
        A JSON-serialisable dict with ``strategy`` (name, resolved spec, layer range and module
        names), ``sparsity``, ``criterion``, ``scope``, ``seed``, ``tensors`` (one entry per
        pruned weight in ``named_modules()`` order), ``total_numel``, ``total_pruned`` and
        ``achieved_sparsity``. The caller adds provenance.

    Raises:
        StrategyError: an invalid spec or one that does not fit the model.
        ValueError: a sparsity outside [0, 1), a non-integer seed, or weights that are not float.
    """
    sparsity = _check_sparsity(sparsity)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    spec = validate_strategy_spec(name, spec)
    module_names = resolve_strategy(model, name, spec)

    started = time.perf_counter()
    tensor_names = [f"{module_name}.weight" for module_name in module_names]
    weights = [model.get_submodule(module_name).weight for module_name in module_names]
    for tensor_name, weight in zip(tensor_names, weights):
        if weight.dtype not in PRUNABLE_DTYPES:
            raise ValueError(
                f"tensor {tensor_name!r} has dtype {weight.dtype}; prunable dtypes are "
                f"{[_dtype_name(dtype) for dtype in PRUNABLE_DTYPES]}"
            )
    logger.info(
        "building recipe: strategy %r, criterion %s, scope %s, sparsity %.4f, %d tensors, %d weights, device %s",
        name,
        spec["criterion"],
        spec["scope"],
        sparsity,
        len(weights),
        sum(weight.numel() for weight in weights),
        weights[0].device,
    )

    # Scores are recomputed on every pass rather than kept, so memory stays near one tensor.
    if spec["criterion"] == "magnitude":
        score_dtype = torch.float64 if any(w.dtype == torch.float64 for w in weights) else torch.float32
        tensor_seeds = [None] * len(weights)
        sources = [
            (tensor_name, lambda weight=weight: _magnitude_scores(weight, score_dtype))
            for tensor_name, weight in zip(tensor_names, weights)
        ]
    else:
        tensor_seeds = [tensor_seed(seed, tensor_name) for tensor_name in tensor_names]
        sources = [
            (tensor_name, lambda weight=weight, tensor_seed=tensor_seed: _random_scores(weight, tensor_seed))
            for tensor_name, weight, tensor_seed in zip(tensor_names, weights, tensor_seeds)
        ]

    if spec["scope"] == "global":
        total_numel = sum(weight.numel() for weight in weights)
        cut = find_cut(sources, round(sparsity * total_numel), description=f"{name} global cut")
        cuts = [(cut.threshold, cut.tied_pruned[i], cut.pruned[i]) for i in range(len(weights))]
    else:
        cuts = []
        for source, weight in tqdm(list(zip(sources, weights)), desc=f"{name} per-tensor cuts", disable=None):
            cut = find_cut([source], round(sparsity * weight.numel()), description=source[0])
            cuts.append((cut.threshold, cut.tied_pruned[0], cut.pruned[0]))

    tensors = []
    for tensor_name, weight, tensor_seed_value, (threshold, tied_pruned, pruned) in zip(
        tensor_names, weights, tensor_seeds, cuts
    ):
        entry = {
            "name": tensor_name,
            "numel": weight.numel(),
            "pruned": pruned,
            "shape": list(weight.shape),
            "dtype": _dtype_name(weight.dtype),
            "threshold": threshold,
            "tied_pruned": tied_pruned,
        }
        if tensor_seed_value is not None:
            entry["seed"] = tensor_seed_value
        tensors.append(entry)

    total_numel = sum(entry["numel"] for entry in tensors)
    total_pruned = sum(entry["pruned"] for entry in tensors)
    _, blocks = find_block_list(model)
    layer_range = list(resolve_layer_range(name, spec["layers"], len(blocks)))
    recipe = {
        "strategy": {"name": name, "spec": spec, "layer_range": layer_range, "modules": module_names},
        "sparsity": sparsity,
        "criterion": spec["criterion"],
        "scope": spec["scope"],
        "seed": seed,
        "tensors": tensors,
        "total_numel": total_numel,
        "total_pruned": total_pruned,
        "achieved_sparsity": total_pruned / total_numel,
    }
    logger.info(
        "built recipe for %r: %d of %d weights pruned (achieved sparsity %.6f) in %.2f s",
        name,
        total_pruned,
        total_numel,
        recipe["achieved_sparsity"],
        time.perf_counter() - started,
    )
    return recipe


def _check_entry(entry, index: int | None = None) -> None:
    """Check that a recipe's tensor entry has every field, with the right types."""
    label = "recipe tensor" if index is None else f"recipe tensor #{index}"
    if not isinstance(entry, dict):
        raise RecipeError(f"{label}: expected a mapping, got {type(entry).__name__}")
    missing = [key for key in TENSOR_ENTRY_KEYS if key not in entry]
    if missing:
        raise RecipeError(f"{label} ({entry.get('name', '?')!r}): missing keys {missing}")
    for key in ("numel", "pruned", "tied_pruned"):
        value = entry[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RecipeError(f"recipe tensor {entry['name']!r}: {key}={value!r} must be a non-negative integer")
    if entry["pruned"] > entry["numel"]:
        raise RecipeError(f"recipe tensor {entry['name']!r}: pruned={entry['pruned']} exceeds numel={entry['numel']}")
    if not isinstance(entry["threshold"], (int, float)) or isinstance(entry["threshold"], bool):
        raise RecipeError(f"recipe tensor {entry['name']!r}: threshold={entry['threshold']!r} must be a number")


def compute_mask(weight: torch.Tensor, tensor_entry: dict, criterion: str) -> torch.Tensor:
    """Rebuild one tensor's pruning mask (True = pruned) from its recipe entry.

    Args:
        weight: the weight the entry was built from, on any device.
        tensor_entry: one item of ``recipe["tensors"]``.
        criterion: ``recipe["criterion"]``.

    Raises:
        RecipeError: an unknown criterion, a malformed entry, a shape or numel mismatch, or
            weights with fewer values at the threshold than the entry prunes.
    """
    _check_entry(tensor_entry)
    name = tensor_entry["name"]
    if criterion not in CRITERIA:
        raise RecipeError(f"recipe criterion {criterion!r} is unknown; allowed values are {list(CRITERIA)}")
    if list(weight.shape) != list(tensor_entry["shape"]) or weight.numel() != tensor_entry["numel"]:
        raise RecipeError(
            f"tensor {name!r}: recipe has shape {tensor_entry['shape']} (numel {tensor_entry['numel']}), "
            f"model has shape {list(weight.shape)} (numel {weight.numel()})"
        )

    threshold = float(tensor_entry["threshold"])
    if criterion == "magnitude":
        scores = _magnitude_scores(weight, _magnitude_dtype(weight.dtype, threshold))
    else:
        if "seed" not in tensor_entry:
            raise RecipeError(f"recipe tensor {name!r}: criterion 'random' needs a 'seed'")
        scores = _random_scores(weight, tensor_entry["seed"])

    try:
        return select_smallest(scores, threshold, tensor_entry["tied_pruned"])
    except ValueError as error:
        raise RecipeError(f"tensor {name!r}: {error}; these are not the weights the recipe was built from") from error


def check_recipe_matches(model: nn.Module, recipe: dict) -> None:
    """Check a recipe's structure and that its tensor names, numel, shapes and dtypes match the model.

    Raises:
        RecipeError: naming the first mismatching tensor, the recipe value and the model value.
    """
    if not isinstance(recipe, dict):
        raise RecipeError(f"recipe must be a mapping, got {type(recipe).__name__}")
    for key in ("criterion", "tensors", "total_pruned"):
        if key not in recipe:
            raise RecipeError(f"recipe is missing key {key!r}")
    if recipe["criterion"] not in CRITERIA:
        raise RecipeError(f"recipe criterion {recipe['criterion']!r} is unknown; allowed values are {list(CRITERIA)}")
    if not isinstance(recipe["tensors"], list):
        raise RecipeError("recipe key 'tensors' must be a list")

    for index, entry in enumerate(recipe["tensors"]):
        _check_entry(entry, index)
        name = entry["name"]
        module_name, _, parameter = name.rpartition(".")
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            module = None
        if parameter != "weight" or not isinstance(module, nn.Linear):
            raise RecipeError(f"tensor {name!r}: recipe names a Linear weight, but the model has no such Linear module")

        weight = module.weight
        if weight.numel() != entry["numel"]:
            raise RecipeError(f"tensor {name!r}: recipe numel {entry['numel']}, model numel {weight.numel()}")
        if list(weight.shape) != list(entry["shape"]):
            raise RecipeError(f"tensor {name!r}: recipe shape {entry['shape']}, model shape {list(weight.shape)}")
        if _dtype_name(weight.dtype) != entry["dtype"]:
            raise RecipeError(
                f"tensor {name!r}: recipe dtype {entry['dtype']}, model dtype {_dtype_name(weight.dtype)}; "
                "load the model in the dtype the recipe was built in"
            )

    recorded = sum(entry["pruned"] for entry in recipe["tensors"])
    if recorded != recipe["total_pruned"]:
        raise RecipeError(f"recipe total_pruned={recipe['total_pruned']} but its tensors prune {recorded}")


def apply_recipe(model: nn.Module, recipe: dict) -> dict:
    """Zero the pruned weights of a recipe in place (no ``weight_orig``, no hooks).

    Names, numel, shapes and dtypes are checked for every tensor before any weight changes. Each
    rebuilt mask must then select exactly the recorded ``pruned`` count, and positions that already
    held zeros count as pruned like any other. The model must hold the weights the recipe was
    built from: applying it to an already pruned model raises, because the pruned weights at the
    threshold are zero by then.

    Returns:
        ``tensors``, ``total_numel``, ``total_pruned``, ``achieved_sparsity`` and
        ``already_zero`` (pruned positions whose weight was already exactly zero).

    Raises:
        RecipeError: a recipe for another model (the message names the tensor, the recipe value
            and the model value), or weights whose mask count differs from the recipe. In the
            latter case the tensors before the failing one are already pruned, so reload the model.
    """
    check_recipe_matches(model, recipe)

    started = time.perf_counter()
    total_numel = 0
    total_pruned = 0
    already_zero = 0
    with torch.no_grad():
        for index, entry in enumerate(tqdm(recipe["tensors"], desc="applying recipe", disable=None)):
            weight = model.get_submodule(entry["name"].rpartition(".")[0]).weight
            mask = compute_mask(weight, entry, recipe["criterion"])

            pruned = int(mask.sum().item())
            if pruned != entry["pruned"]:
                raise RecipeError(
                    f"tensor {entry['name']!r}: rebuilt mask prunes {pruned} positions, but the recipe records "
                    f"{entry['pruned']}, so these are not the weights the recipe was built from ({index} earlier tensors already pruned)"
                )

            already_zero += int((weight == 0).logical_and_(mask).sum().item())
            weight.masked_fill_(mask, 0)
            total_numel += entry["numel"]
            total_pruned += pruned

    result = {
        "tensors": len(recipe["tensors"]),
        "total_numel": total_numel,
        "total_pruned": total_pruned,
        "achieved_sparsity": total_pruned / total_numel if total_numel else 0.0,
        "already_zero": already_zero,
    }
    logger.info(
        "applied recipe: %d tensors, %d of %d weights pruned (%d were already zero) in %.2f s",
        result["tensors"],
        total_pruned,
        total_numel,
        already_zero,
        time.perf_counter() - started,
    )
    return result


def write_recipe(recipe: dict, path: str | os.PathLike) -> Path:
    """Write a recipe as JSON atomically (a temporary file renamed into place)."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(recipe, indent=1) + "\n")
    os.replace(temporary, path)
    return path


def read_recipe(path: str | os.PathLike) -> dict:
    """Read a recipe written by ``write_recipe``.

    Raises:
        RecipeError: the file is not valid JSON or not a JSON object.
    """
    path = Path(path)
    try:
        recipe = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise RecipeError(f"recipe file {path} is not valid JSON: {error}") from error
    if not isinstance(recipe, dict):
        raise RecipeError(f"recipe file {path} must hold a JSON object, got {type(recipe).__name__}")
    return recipe


def export_pruned(model: nn.Module, tokenizer, recipe: dict, out_dir: str | os.PathLike) -> dict:
    """Prune a model in place and save it as a normal checkpoint with its tokenizer and recipe.

    Args:
        model: a Hugging Face ``PreTrainedModel``; it is pruned in place.
        tokenizer: the model's tokenizer, saved next to it so the folder loads like a hub model.
        recipe: the recipe to apply, written to ``out_dir/pruning_recipe.json``.
        out_dir: the output folder (created if missing).

    Returns:
        The totals from ``apply_recipe``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    totals = apply_recipe(model, recipe)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_recipe(recipe, out_dir / RECIPE_FILENAME)

    logger.info("exported pruned model to %s (%d weights pruned)", out_dir, totals["total_pruned"])
    return totals
