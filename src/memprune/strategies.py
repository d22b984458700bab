"""Pruning strategy specs: presets, validation and resolution to a model's Linear modules.

A strategy spec is a dict from the config with four keys:

- ``criterion``: ``magnitude`` (prune the smallest ``|w|``) or ``random`` (a control).
- ``scope``: ``per_tensor`` (each tensor reaches the target sparsity) or ``global`` (the whole
  selected set does, so tensors end up with different sparsities).
- ``modules``: name patterns. A pattern matches a module whose qualified name ends with it on a
  dot boundary, so ``attention.dense`` matches ``gpt_neox.layers.3.attention.dense`` but not
  ``gpt_neox.layers.3.mlp.dense_h_to_4h``.
- ``layers`` (default ``all``): ``all``, ``{start: i, stop: j}`` (half-open range of block
  indices) or ``{deepest_fraction: f}`` with ``0 < f <= 1`` (the last ``ceil(f * n_layers)``
  blocks). Modules outside the transformer block list, such as the output embedding, are
  selected whenever a pattern matches them, regardless of ``layers``.

Only the weights of ``torch.nn.Linear`` modules are pruned. The block list is found generically
as the ``nn.ModuleList`` whose length equals ``model.config.num_hidden_layers``
(``gpt_neox.layers`` on GPT-NeoX, ``model.layers`` on Llama, ``transformer.h`` on GPT-2).
"""

import copy
import logging
import math
from fractions import Fraction

from torch import nn

logger = logging.getLogger(__name__)

CRITERIA = ("magnitude", "random")
SCOPES = ("per_tensor", "global")
SPEC_KEYS = ("criterion", "scope", "modules", "layers")
REQUIRED_SPEC_KEYS = ("criterion", "scope", "modules")
LAYER_SPEC_FORMS = "'all', {start: i, stop: j} or {deepest_fraction: f} with 0 < f <= 1"

# transformers 5 loads Pythia's `embed_out.weight` as `lm_head.weight`, and other causal LMs
# call their output head `lm_head`. Either pattern falls back to `model.get_output_embeddings()`
# when no module name matches it literally.
OUTPUT_EMBEDDING_PATTERNS = ("embed_out", "lm_head")

BLOCK_LINEARS = [
    "attention.query_key_value",
    "attention.dense",
    "mlp.dense_h_to_4h",
    "mlp.dense_4h_to_h",
]

STRATEGY_PRESETS: dict[str, dict] = {
    "layerwise_magnitude": {
        "criterion": "magnitude",
        "scope": "per_tensor",
        "modules": list(BLOCK_LINEARS),
        "layers": "all",
    },
    "global_magnitude": {
        "criterion": "magnitude",
        "scope": "global",
        "modules": list(BLOCK_LINEARS),
        "layers": "all",
    },
    "all_linear": {
        "criterion": "magnitude",
        "scope": "global",
        "modules": [*BLOCK_LINEARS, "embed_out"],
        "layers": "all",
    },
    "attention_only": {
        "criterion": "magnitude",
        "scope": "per_tensor",
        "modules": ["attention.query_key_value", "attention.dense"],
        "layers": "all",
    },
    "deeper_layers": {
        "criterion": "magnitude",
        "scope": "per_tensor",
        "modules": list(BLOCK_LINEARS),
        "layers": {"deepest_fraction": 0.5},
    },
    "random": {
        "criterion": "random",
        "scope": "per_tensor",
        "modules": list(BLOCK_LINEARS),
        "layers": "all",
    },
}


class StrategyError(ValueError):
    """A strategy spec is invalid, or does not fit the model it is resolved against."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate_layers(name: str, layers) -> str | dict:
    """Check the ``layers`` value of strategy ``name`` and return a normalised copy."""
    if layers == "all":
        return "all"

    if not isinstance(layers, dict):
        raise StrategyError(
            f"strategy {name!r}: key 'layers' has invalid value {layers!r}; expected {LAYER_SPEC_FORMS}"
        )

    if set(layers) == {"start", "stop"}:
        start, stop = layers["start"], layers["stop"]
        if not (_is_int(start) and _is_int(stop)):
            raise StrategyError(
                f"strategy {name!r}: key 'layers' has start={start!r}, stop={stop!r}; both must be integers"
            )
        if not 0 <= start < stop:
            raise StrategyError(
                f"strategy {name!r}: key 'layers' has start={start}, stop={stop}; "
                "expected 0 <= start < stop (a half-open range of block indices)"
            )
        return {"start": start, "stop": stop}

    if set(layers) == {"deepest_fraction"}:
        fraction = layers["deepest_fraction"]
        if not _is_real(fraction) or not 0 < fraction <= 1:
            raise StrategyError(
                f"strategy {name!r}: key 'layers.deepest_fraction' has invalid value {fraction!r}; "
                "expected a number with 0 < f <= 1"
            )
        return {"deepest_fraction": fraction}

    raise StrategyError(
        f"strategy {name!r}: key 'layers' has invalid keys {sorted(layers)}; expected {LAYER_SPEC_FORMS}"
    )


def validate_strategy_spec(name: str, spec: dict) -> dict:
    """Check a strategy spec without a model and return a normalised copy.

    Args:
        name: the strategy's name in the config, used in error messages and recipes.
        spec: the mapping with keys ``criterion``, ``scope``, ``modules`` and optionally ``layers``.

    Returns:
        A new dict with all four keys, ``layers`` defaulting to ``"all"``.

    Raises:
        StrategyError: an unknown or missing key, an unknown criterion or scope, an empty or
            malformed module list, or an invalid layer spec.
    """
    if not isinstance(name, str) or not name:
        raise StrategyError(f"strategy name must be a non-empty string, got {name!r}")
    if not isinstance(spec, dict):
        raise StrategyError(f"strategy {name!r}: spec must be a mapping, got {type(spec).__name__}")

    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise StrategyError(f"strategy {name!r}: unknown keys {unknown}; allowed keys are {list(SPEC_KEYS)}")
    missing = [key for key in REQUIRED_SPEC_KEYS if key not in spec]
    if missing:
        raise StrategyError(f"strategy {name!r}: missing required keys {missing}")

    criterion = spec["criterion"]
    if criterion not in CRITERIA:
        raise StrategyError(
            f"strategy {name!r}: key 'criterion' has invalid value {criterion!r}; allowed values are {list(CRITERIA)}"
        )
    scope = spec["scope"]
    if scope not in SCOPES:
        raise StrategyError(
            f"strategy {name!r}: key 'scope' has invalid value {scope!r}; allowed values are {list(SCOPES)}"
        )

    modules = spec["modules"]
    if not isinstance(modules, (list, tuple)) or not modules:
        raise StrategyError(
            f"strategy {name!r}: key 'modules' has invalid value {modules!r}; expected a non-empty list of "
            "module name patterns such as 'attention.dense'"
        )
    for pattern in modules:
        if not isinstance(pattern, str) or not pattern or pattern.startswith(".") or pattern.endswith("."):
            raise StrategyError(
                f"strategy {name!r}: key 'modules' has invalid pattern {pattern!r}; expected a dotted module "
                "name suffix such as 'attention.dense'"
            )
    duplicates = sorted({pattern for pattern in modules if modules.count(pattern) > 1})
    if duplicates:
        raise StrategyError(f"strategy {name!r}: key 'modules' lists {duplicates} more than once")

    layers = _validate_layers(name, spec.get("layers", "all"))

    return {"criterion": criterion, "scope": scope, "modules": list(modules), "layers": layers}


def find_block_list(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Find the transformer block list: the ``nn.ModuleList`` of length ``config.num_hidden_layers``.

    Returns:
        The list's qualified name (e.g. ``gpt_neox.layers``) and the list itself.

    Raises:
        StrategyError: the model has no ``config.num_hidden_layers``, or not exactly one such list.
    """
    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if not _is_int(n_layers):
        raise StrategyError(
            f"model {type(model).__name__} has no integer config.num_hidden_layers (got {n_layers!r}); "
            "cannot locate its transformer blocks"
        )

    candidates = [
        (module_name, module)
        for module_name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) == n_layers
    ]
    if len(candidates) != 1:
        found = [module_name for module_name, _ in candidates]
        raise StrategyError(
            f"model {type(model).__name__}: expected exactly one nn.ModuleList of length "
            f"num_hidden_layers={n_layers} as the transformer block list, found {len(found)}: {found}"
        )
    return candidates[0]


def resolve_layer_range(name: str, layers: str | dict, n_layers: int) -> tuple[int, int]:
    """Turn a validated ``layers`` value into a half-open block range ``(start, stop)``.

    ``deepest_fraction`` is read from its shortest decimal form (``repr``), so 0.1 of 10 blocks is
    exactly 1 block rather than the ceiling of the binary float product.

    Raises:
        StrategyError: a ``start``/``stop`` range outside ``[0, n_layers]``.
    """
    if layers == "all":
        return 0, n_layers

    if "deepest_fraction" in layers:
        fraction = Fraction(repr(float(layers["deepest_fraction"])))
        count = math.ceil(fraction * n_layers)
        return n_layers - count, n_layers

    start, stop = layers["start"], layers["stop"]
    if not 0 <= start < stop <= n_layers:
        raise StrategyError(
            f"strategy {name!r}: layer range [{start}, {stop}) is outside the model's blocks; "
            f"the model has n_layers={n_layers}, so 0 <= start < stop <= {n_layers}"
        )
    return start, stop


def _matches(module_name: str, pattern: str) -> bool:
    return module_name == pattern or module_name.endswith("." + pattern)


def _block_index(module_name: str, block_prefix: str) -> int | None:
    """Return the block index of a module inside the block list, or None for modules outside it."""
    if not module_name.startswith(block_prefix + "."):
        return None
    return int(module_name[len(block_prefix) + 1 :].split(".", 1)[0])


def _output_embedding_name(model: nn.Module) -> str | None:
    """Return the qualified name of the model's output embedding if it is a Linear module."""
    get_output = getattr(model, "get_output_embeddings", None)
    output = get_output() if callable(get_output) else None
    if not isinstance(output, nn.Linear):
        return None
    for module_name, module in model.named_modules():
        if module is output:
            return module_name
    return None


def resolve_strategy(model: nn.Module, name: str, spec: dict) -> list[str]:
    """Select the qualified names of the Linear modules a strategy prunes, in ``named_modules()`` order.

    Args:
        model: the causal LM, e.g. a ``GPTNeoXForCausalLM``.
        name: the strategy's name, used in error messages.
        spec: a strategy spec (validated here).

    Raises:
        StrategyError: an invalid spec, a pattern that matches no Linear module (the message lists
            some real Linear module names), a layer range outside the model, or a selection in
            which two modules share one weight tensor.
    """
    spec = validate_strategy_spec(name, spec)
    block_prefix, blocks = find_block_list(model)
    start, stop = resolve_layer_range(name, spec["layers"], len(blocks))

    linear_names = [module_name for module_name, module in model.named_modules() if isinstance(module, nn.Linear)]
    output_name = _output_embedding_name(model)

    matched_by_pattern: dict[str, list[str]] = {}
    for pattern in spec["modules"]:
        matched = [module_name for module_name in linear_names if _matches(module_name, pattern)]
        if not matched and pattern in OUTPUT_EMBEDDING_PATTERNS and output_name is not None:
            logger.info("strategy %r: pattern %r resolves to the output embedding %r", name, pattern, output_name)
            matched = [output_name]
        if not matched:
            non_linear = [
                f"{module_name} ({type(module).__name__})"
                for module_name, module in model.named_modules()
                if module_name and _matches(module_name, pattern)
            ]
            hint = f"; it matches only non-Linear modules {non_linear[:3]}" if non_linear else ""
            raise StrategyError(
                f"strategy {name!r}: module pattern {pattern!r} matches no torch.nn.Linear module{hint}. "
                f"Linear modules in this model include {linear_names[:6]}"
            )
        matched_by_pattern[pattern] = matched

    selected_set = {module_name for matched in matched_by_pattern.values() for module_name in matched}
    selected = []
    skipped_by_layer = 0
    for module_name in linear_names:
        if module_name not in selected_set:
            continue
        block = _block_index(module_name, block_prefix)
        if block is not None and not start <= block < stop:
            skipped_by_layer += 1
            continue
        selected.append(module_name)

    if not selected:
        raise StrategyError(
            f"strategy {name!r}: patterns {spec['modules']} select no module in blocks [{start}, {stop})"
        )

    weights_seen: dict[int, str] = {}
    for module_name in selected:
        weight = model.get_submodule(module_name).weight
        other = weights_seen.setdefault(id(weight), module_name)
        if other != module_name:
            raise StrategyError(
                f"strategy {name!r}: modules {other!r} and {module_name!r} share one weight tensor; "
                "select only one of them"
            )

    selected_weights = {f"{module_name}.weight" for module_name in selected}
    for parameter_name, parameter in model.named_parameters(remove_duplicate=False):
        owner = weights_seen.get(id(parameter))
        if owner is not None and parameter_name not in selected_weights:
            logger.warning(
                "strategy %r: %r shares its weight with %r (tied weights), so pruning it changes both",
                name,
                owner,
                parameter_name,
            )

    logger.info(
        "strategy %r: %d Linear modules selected in blocks [%d, %d) of %d (%d matching modules outside the range)",
        name,
        len(selected),
        start,
        stop,
        len(blocks),
        skipped_by_layer,
    )
    return selected


def strategy_preset(name: str) -> dict:
    """Return a deep copy of a preset spec, so callers may edit it.

    Raises:
        StrategyError: an unknown preset name.
    """
    if name not in STRATEGY_PRESETS:
        raise StrategyError(f"unknown strategy preset {name!r}; presets are {sorted(STRATEGY_PRESETS)}")
    return copy.deepcopy(STRATEGY_PRESETS[name])
