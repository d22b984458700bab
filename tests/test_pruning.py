"""Tests of pruning strategies, exact recipes, the radix-select threshold, apply and export."""

import copy
import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from torch import nn
from torch.nn.utils import prune
from transformers import (
    AutoModelForCausalLM,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from memprune.pruning import (
    RECIPE_FILENAME,
    RecipeError,
    apply_recipe,
    build_recipe,
    compute_mask,
    export_pruned,
    read_recipe,
    write_recipe,
)
from memprune.strategies import (
    STRATEGY_PRESETS,
    StrategyError,
    resolve_layer_range,
    resolve_strategy,
    strategy_preset,
    validate_strategy_spec,
)
from memprune.threshold import find_cut

SPARSITIES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
N_LAYERS = 4


def make_neox(seed: int = 0, hidden_size: int = 64) -> GPTNeoXForCausalLM:
    """Build a tiny randomly initialised GPT-NeoX (the Pythia architecture)."""
    config = GPTNeoXConfig(
        hidden_size=hidden_size,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=4,
        intermediate_size=4 * hidden_size,
        vocab_size=256,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(config)
    # HF initialises biases to zero, so random biases make the "untouched" checks meaningful.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.normal_()
    return model.eval()


@pytest.fixture(scope="module")
def neox() -> GPTNeoXForCausalLM:
    return make_neox()


def spec_with(preset: str, **changes) -> dict:
    spec = strategy_preset(preset)
    spec.update(changes)
    return spec


def zero_count(tensor: torch.Tensor) -> int:
    return int((tensor == 0).sum().item())


def masks_of(model: nn.Module, recipe: dict) -> dict[str, torch.Tensor]:
    return {
        entry["name"]: compute_mask(model.get_parameter(entry["name"]), entry, recipe["criterion"])
        for entry in recipe["tensors"]
    }


def reference_smallest_mask(weights: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Select the k smallest |w| by a stable sort of the concatenation (ties: tensor order, flat index)."""
    flat = torch.cat([weight.detach().abs().to(torch.float64).reshape(-1) for weight in weights])
    order = torch.sort(flat, stable=True).indices
    selected = torch.zeros_like(flat, dtype=torch.bool)
    selected[order[:k]] = True
    return list(torch.split(selected, [weight.numel() for weight in weights]))


# Strategy specs


def test_presets_validate_unchanged():
    for name, spec in STRATEGY_PRESETS.items():
        assert validate_strategy_spec(name, spec) == spec


def test_validate_defaults_layers_to_all():
    spec = {"criterion": "magnitude", "scope": "global", "modules": ["attention.dense"]}
    assert validate_strategy_spec("s", spec)["layers"] == "all"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"criterion": "wanda"}, "'criterion' has invalid value 'wanda'; allowed values are ['magnitude', 'random']"),
        ({"scope": "blockwise"}, "'scope' has invalid value 'blockwise'; allowed values are ['per_tensor', 'global']"),
        ({"sparsity": 0.5}, "unknown keys ['sparsity']"),
        ({"modules": []}, "'modules' has invalid value []"),
        ({"modules": ["attention.dense", ""]}, "invalid pattern ''"),
        ({"modules": ["attention.dense", "attention.dense"]}, "lists ['attention.dense'] more than once"),
        ({"layers": "some"}, "'layers' has invalid value 'some'"),
        ({"layers": {"start": 2, "stop": 2}}, "expected 0 <= start < stop"),
        ({"layers": {"start": -1, "stop": 2}}, "expected 0 <= start < stop"),
        ({"layers": {"start": 0.5, "stop": 2}}, "both must be integers"),
        ({"layers": {"start": 0}}, "'layers' has invalid keys ['start']"),
        ({"layers": {"deepest_fraction": 0}}, "'layers.deepest_fraction' has invalid value 0"),
        ({"layers": {"deepest_fraction": 1.5}}, "'layers.deepest_fraction' has invalid value 1.5"),
        ({"layers": {"deepest_fraction": True}}, "'layers.deepest_fraction' has invalid value True"),
    ],
)
def test_validate_rejects_bad_spec(change, message):
    spec = spec_with("layerwise_magnitude", **change)
    with pytest.raises(StrategyError) as raised:
        validate_strategy_spec("mine", spec)
    assert "strategy 'mine'" in str(raised.value)
    assert message in str(raised.value)


def test_validate_rejects_missing_criterion():
    spec = strategy_preset("layerwise_magnitude")
    del spec["criterion"]
    with pytest.raises(StrategyError, match=r"missing required keys \['criterion'\]"):
        validate_strategy_spec("mine", spec)


@pytest.mark.parametrize(
    ("layers", "n_layers", "expected"),
    [
        ("all", 4, (0, 4)),
        ({"start": 1, "stop": 3}, 4, (1, 3)),
        ({"deepest_fraction": 0.5}, 4, (2, 4)),
        ({"deepest_fraction": 0.5}, 5, (2, 5)),
        ({"deepest_fraction": 0.1}, 10, (9, 10)),
        ({"deepest_fraction": 0.3}, 10, (7, 10)),
        ({"deepest_fraction": 0.01}, 4, (3, 4)),
        ({"deepest_fraction": 1}, 4, (0, 4)),
    ],
)
def test_layer_range_resolution(layers, n_layers, expected):
    assert resolve_layer_range("s", layers, n_layers) == expected


def test_resolve_pattern_dot_boundary(neox):
    spec = spec_with("layerwise_magnitude", modules=["dense"])
    names = resolve_strategy(neox, "s", spec)
    assert names == [f"gpt_neox.layers.{i}.attention.dense" for i in range(N_LAYERS)]


def test_resolve_presets_on_neox(neox):
    blocks = [f"gpt_neox.layers.{i}" for i in range(N_LAYERS)]
    four = ["attention.query_key_value", "attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"]

    assert resolve_strategy(neox, "l", STRATEGY_PRESETS["layerwise_magnitude"]) == [
        f"{block}.{module}" for block in blocks for module in four
    ]
    assert resolve_strategy(neox, "a", STRATEGY_PRESETS["attention_only"]) == [
        f"{block}.{module}" for block in blocks for module in four[:2]
    ]
    assert resolve_strategy(neox, "d", STRATEGY_PRESETS["deeper_layers"]) == [
        f"{block}.{module}" for block in blocks[2:] for module in four
    ]
    # transformers 5 names Pythia's embed_out `lm_head`; the pattern resolves to it.
    assert resolve_strategy(neox, "all", STRATEGY_PRESETS["all_linear"])[-1] == "lm_head"


def test_resolve_unknown_pattern_lists_names(neox):
    spec = spec_with("layerwise_magnitude", modules=["attention.dense", "self_attn.q_proj"])
    with pytest.raises(StrategyError) as raised:
        resolve_strategy(neox, "mine", spec)
    message = str(raised.value)
    assert "'self_attn.q_proj' matches no torch.nn.Linear module" in message
    assert "gpt_neox.layers.0.attention.query_key_value" in message


def test_resolve_non_linear_pattern(neox):
    spec = spec_with("layerwise_magnitude", modules=["input_layernorm"])
    with pytest.raises(StrategyError, match=r"matches only non-Linear modules .*LayerNorm"):
        resolve_strategy(neox, "mine", spec)


def test_resolve_layer_range_outside_model(neox):
    spec = spec_with("layerwise_magnitude", layers={"start": 2, "stop": 6})
    with pytest.raises(StrategyError) as raised:
        resolve_strategy(neox, "mine", spec)
    assert "layer range [2, 6)" in str(raised.value)
    assert "n_layers=4" in str(raised.value)


# Magnitude recipes against torch.nn.utils.prune


@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_per_tensor_masks_match_l1_unstructured(neox, sparsity):
    recipe = build_recipe(neox, "layerwise_magnitude", STRATEGY_PRESETS["layerwise_magnitude"], sparsity, 0)
    masks = masks_of(neox, recipe)
    reference = copy.deepcopy(neox)

    assert len(recipe["tensors"]) == 4 * N_LAYERS
    for entry in recipe["tensors"]:
        module = reference.get_submodule(entry["name"].removesuffix(".weight"))
        prune.l1_unstructured(module, "weight", amount=sparsity)
        assert torch.equal(masks[entry["name"]], module.weight_mask == 0), entry["name"]
        assert entry["pruned"] == round(sparsity * entry["numel"])
        assert int(masks[entry["name"]].sum()) == entry["pruned"]


@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_global_masks_match_global_unstructured(neox, sparsity):
    recipe = build_recipe(neox, "global_magnitude", STRATEGY_PRESETS["global_magnitude"], sparsity, 0)
    masks = masks_of(neox, recipe)
    reference = copy.deepcopy(neox)
    modules = [reference.get_submodule(entry["name"].removesuffix(".weight")) for entry in recipe["tensors"]]
    prune.global_unstructured([(module, "weight") for module in modules], prune.L1Unstructured, amount=sparsity)

    for entry, module in zip(recipe["tensors"], modules):
        assert torch.equal(masks[entry["name"]], module.weight_mask == 0), entry["name"]
        assert int(masks[entry["name"]].sum()) == entry["pruned"]
    assert recipe["total_pruned"] == round(sparsity * recipe["total_numel"])
    assert len({entry["threshold"] for entry in recipe["tensors"]}) == 1


def test_recipe_fields_and_json(neox, tmp_path):
    recipe = build_recipe(neox, "deeper_layers", STRATEGY_PRESETS["deeper_layers"], 0.25, 7)

    assert recipe["strategy"]["name"] == "deeper_layers"
    assert recipe["strategy"]["layer_range"] == [2, 4]
    assert recipe["strategy"]["modules"][0] == "gpt_neox.layers.2.attention.query_key_value"
    assert recipe["criterion"] == "magnitude"
    assert recipe["scope"] == "per_tensor"
    assert recipe["sparsity"] == 0.25
    assert recipe["seed"] == 7
    entry = recipe["tensors"][0]
    assert entry["shape"] == [192, 64]
    assert entry["dtype"] == "float32"
    assert entry["numel"] == 192 * 64
    assert recipe["total_numel"] == sum(e["numel"] for e in recipe["tensors"])
    assert recipe["achieved_sparsity"] == recipe["total_pruned"] / recipe["total_numel"]

    path = write_recipe(recipe, tmp_path / "recipe.json")
    assert read_recipe(path) == recipe
    assert json.loads(path.read_text())["tensors"][0]["threshold"] == entry["threshold"]


def test_sparsity_zero_prunes_nothing(neox):
    recipe = build_recipe(neox, "g", STRATEGY_PRESETS["global_magnitude"], 0.0, 0)
    model = copy.deepcopy(neox)
    totals = apply_recipe(model, recipe)

    assert recipe["total_pruned"] == 0
    assert totals["total_pruned"] == 0
    for name, tensor in neox.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_half_rounds_to_even():
    layer = nn.Linear(5, 1, bias=False)
    model = wrap_single_linear(layer)
    recipe = build_recipe(model, "s", single_linear_spec("per_tensor"), 0.5, 0)
    assert recipe["total_pruned"] == 2


# Apply


@pytest.mark.parametrize("preset", sorted(STRATEGY_PRESETS))
def test_apply_leaves_other_tensors_identical(neox, preset):
    recipe = build_recipe(neox, preset, STRATEGY_PRESETS[preset], 0.6, 3)
    model = copy.deepcopy(neox)
    totals = apply_recipe(model, recipe)

    pruned_names = {entry["name"] for entry in recipe["tensors"]}
    after = model.state_dict()
    for name, before in neox.state_dict().items():
        if name in pruned_names:
            continue
        assert torch.equal(after[name], before), name
    for entry in recipe["tensors"]:
        weight = model.get_parameter(entry["name"])
        assert zero_count(weight) == entry["pruned"], entry["name"]
    assert totals["total_pruned"] == recipe["total_pruned"]
    assert not any(name.endswith("_orig") for name in after)
    assert not model.gpt_neox.layers[0].attention.dense._forward_pre_hooks


def test_attention_only_touches_attention_weights(neox):
    recipe = build_recipe(neox, "attention_only", STRATEGY_PRESETS["attention_only"], 0.5, 0)
    names = [entry["name"] for entry in recipe["tensors"]]
    assert len(names) == 2 * N_LAYERS
    assert all(".attention." in name for name in names)


def test_deeper_layers_touches_deepest_half(neox):
    recipe = build_recipe(neox, "deeper_layers", STRATEGY_PRESETS["deeper_layers"], 0.5, 0)
    model = copy.deepcopy(neox)
    apply_recipe(model, recipe)

    assert {entry["name"].split(".")[2] for entry in recipe["tensors"]} == {"2", "3"}
    for block in (0, 1):
        for name, tensor in neox.gpt_neox.layers[block].state_dict().items():
            assert torch.equal(model.gpt_neox.layers[block].state_dict()[name], tensor), name


def test_all_linear_prunes_output_embedding(neox):
    recipe = build_recipe(neox, "all_linear", STRATEGY_PRESETS["all_linear"], 0.5, 0)
    model = copy.deepcopy(neox)
    apply_recipe(model, recipe)

    entry = recipe["tensors"][-1]
    assert entry["name"] == "lm_head.weight"
    assert entry["pruned"] > 0
    assert zero_count(model.lm_head.weight) == entry["pruned"]
    assert torch.equal(model.gpt_neox.embed_in.weight, neox.gpt_neox.embed_in.weight)


def test_apply_counts_pruned_positions_not_zeros():
    model = make_neox(seed=1)
    existing_zeros = 100
    with torch.no_grad():
        model.gpt_neox.layers[0].mlp.dense_4h_to_h.weight.view(-1)[:existing_zeros] = 0
    recipe = build_recipe(model, "l", STRATEGY_PRESETS["layerwise_magnitude"], 0.3, 0)
    totals = apply_recipe(model, recipe)

    entry = next(e for e in recipe["tensors"] if e["name"] == "gpt_neox.layers.0.mlp.dense_4h_to_h.weight")
    assert totals["total_pruned"] == recipe["total_pruned"]
    assert totals["already_zero"] == existing_zeros
    assert zero_count(model.gpt_neox.layers[0].mlp.dense_4h_to_h.weight) == entry["pruned"]


def test_apply_rejects_already_pruned_model(neox):
    recipe = build_recipe(neox, "l", STRATEGY_PRESETS["layerwise_magnitude"], 0.4, 0)
    model = copy.deepcopy(neox)
    apply_recipe(model, recipe)
    with pytest.raises(RecipeError, match="not the weights the recipe was built from"):
        apply_recipe(model, recipe)


# Ties, random criterion, dtypes


def wrap_single_linear(layer: nn.Linear) -> nn.Module:
    """Wrap one Linear as the single block of a minimal model with a config."""

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = layer

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = GPTNeoXConfig(num_hidden_layers=1)
            self.layers = nn.ModuleList([Block()])

    return Tiny()


def single_linear_spec(scope: str, criterion: str = "magnitude") -> dict:
    return {"criterion": criterion, "scope": scope, "modules": ["proj"], "layers": "all"}


@pytest.mark.parametrize("scope", ["per_tensor", "global"])
def test_ties_prune_exact_half_deterministically(scope):
    layer = nn.Linear(16, 10, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.25)
    model = wrap_single_linear(layer)

    first = build_recipe(model, "ties", single_linear_spec(scope), 0.5, 0)
    second = build_recipe(model, "ties", single_linear_spec(scope), 0.5, 0)
    mask = compute_mask(layer.weight, first["tensors"][0], "magnitude")

    assert first == second
    assert first["tensors"][0]["threshold"] == 0.25
    assert first["tensors"][0]["tied_pruned"] == 80
    assert int(mask.sum()) == 80
    assert torch.equal(mask.view(-1), torch.arange(160) < 80)
    assert torch.equal(mask, compute_mask(layer.weight, second["tensors"][0], "magnitude"))


def test_global_ties_go_to_earlier_tensors():
    model = make_neox(seed=2)
    with torch.no_grad():
        for block in model.gpt_neox.layers:
            block.attention.dense.weight.fill_(0.01)
    spec = spec_with("global_magnitude", modules=["attention.dense"])
    numel = 64 * 64
    recipe = build_recipe(model, "g", spec, 0.6, 0)

    assert [entry["pruned"] for entry in recipe["tensors"]] == [numel, numel, round(0.4 * numel), 0]
    assert all(entry["threshold"] == recipe["tensors"][0]["threshold"] for entry in recipe["tensors"])


def test_random_criterion_seeded_and_exact(neox):
    spec = STRATEGY_PRESETS["random"]
    first = masks_of(neox, build_recipe(neox, "random", spec, 0.3, 11))
    same = masks_of(neox, build_recipe(neox, "random", spec, 0.3, 11))
    other_recipe = build_recipe(neox, "random", spec, 0.3, 12)
    other = masks_of(neox, other_recipe)

    for entry in other_recipe["tensors"]:
        name = entry["name"]
        assert torch.equal(first[name], same[name]), name
        assert not torch.equal(first[name], other[name]), name
        assert int(other[name].sum()) == entry["pruned"], name
        assert entry["pruned"] == round(0.3 * entry["numel"]), name
        assert isinstance(entry["seed"], int)


def test_random_global_count_exact(neox):
    spec = spec_with("random", scope="global")
    recipe = build_recipe(neox, "rg", spec, 0.45, 5)
    model = copy.deepcopy(neox)
    totals = apply_recipe(model, recipe)

    assert recipe["total_pruned"] == round(0.45 * recipe["total_numel"])
    assert totals["total_pruned"] == recipe["total_pruned"]
    assert sum(zero_count(model.get_parameter(e["name"])) for e in recipe["tensors"]) == recipe["total_pruned"]


def test_random_masks_differ_between_tensors(neox):
    recipe = build_recipe(neox, "random", STRATEGY_PRESETS["random"], 0.5, 0)
    masks = masks_of(neox, recipe)
    first = masks["gpt_neox.layers.0.attention.dense.weight"]
    second = masks["gpt_neox.layers.1.attention.dense.weight"]
    assert not torch.equal(first, second)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_global_threshold_exact_in_dtype(neox, dtype):
    model = copy.deepcopy(neox).to(dtype)
    recipe = build_recipe(model, "g", STRATEGY_PRESETS["global_magnitude"], 0.37, 0)
    weights = [model.get_parameter(entry["name"]) for entry in recipe["tensors"]]
    expected = reference_smallest_mask(weights, round(0.37 * recipe["total_numel"]))
    masks = masks_of(model, recipe)

    assert recipe["total_pruned"] == round(0.37 * recipe["total_numel"])
    assert recipe["tensors"][0]["dtype"] == str(dtype).removeprefix("torch.")
    for entry, reference in zip(recipe["tensors"], expected):
        assert torch.equal(masks[entry["name"]].view(-1), reference), entry["name"]

    totals = apply_recipe(model, recipe)
    assert totals["total_pruned"] == recipe["total_pruned"]
    assert sum(zero_count(weight) for weight in weights) == recipe["total_pruned"]


def test_bf16_has_ties_at_cut(neox):
    model = copy.deepcopy(neox).to(torch.bfloat16)
    recipe = build_recipe(model, "g", STRATEGY_PRESETS["global_magnitude"], 0.5, 0)
    assert sum(entry["tied_pruned"] for entry in recipe["tensors"]) > 1


# Radix select


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_find_cut_matches_stable_sort(dtype):
    generator = torch.Generator().manual_seed(0)
    tensors = [
        torch.randint(0, 50, (300,), generator=generator).to(dtype) / 7,
        torch.zeros(40, dtype=dtype),
        torch.rand(500, generator=generator, dtype=dtype) * 1e-30,
        torch.full((20,), float("inf"), dtype=dtype),
        torch.randn(200, generator=generator, dtype=dtype).abs() * 1e6,
    ]
    sources = [(f"t{i}", lambda tensor=tensor: tensor) for i, tensor in enumerate(tensors)]
    total = sum(tensor.numel() for tensor in tensors)

    for k in [0, 1, 39, 40, 41, 333, 700, 1000, total - 20, total - 1, total]:
        cut = find_cut(sources, k)
        expected = reference_smallest_mask(tensors, k)
        assert sum(cut.pruned) == k
        for tensor, pruned, tied, reference in zip(tensors, cut.pruned, cut.tied_pruned, expected):
            rebuilt = (tensor < cut.threshold).sum() + tied
            assert pruned == int(rebuilt), k
            assert pruned == int(reference.sum()), k


def test_find_cut_rejects_nan_and_bad_k():
    good = [("good", lambda: torch.ones(4))]
    with pytest.raises(ValueError, match="'bad': scores contain NaN"):
        find_cut([*good, ("bad", lambda: torch.tensor([1.0, float("nan")]))], 1)
    with pytest.raises(ValueError, match="k=5 exceeds the number of scores"):
        find_cut(good, 5)
    with pytest.raises(ValueError, match="float32 or float64"):
        find_cut([("half", lambda: torch.ones(4, dtype=torch.float16))], 1)


# Errors


@pytest.mark.parametrize("sparsity", [1.0, -0.1, 1.5, float("nan"), True])
def test_build_rejects_bad_sparsity(neox, sparsity):
    with pytest.raises(ValueError, match="sparsity"):
        build_recipe(neox, "g", STRATEGY_PRESETS["global_magnitude"], sparsity, 0)


def test_build_rejects_unknown_criterion(neox):
    with pytest.raises(StrategyError, match="'criterion' has invalid value 'wanda'"):
        build_recipe(neox, "g", spec_with("global_magnitude", criterion="wanda"), 0.5, 0)


def test_apply_rejects_recipe_for_other_model(neox):
    recipe = build_recipe(neox, "l", STRATEGY_PRESETS["layerwise_magnitude"], 0.5, 0)
    other = make_neox(hidden_size=32)
    before = copy.deepcopy(other.state_dict())

    with pytest.raises(RecipeError) as raised:
        apply_recipe(other, recipe)
    message = str(raised.value)
    assert "gpt_neox.layers.0.attention.query_key_value.weight" in message
    assert "recipe numel 12288" in message
    assert "model numel 3072" in message
    for name, tensor in before.items():
        assert torch.equal(other.state_dict()[name], tensor), name


def test_apply_rejects_same_shape_other_weights(neox):
    recipe = build_recipe(neox, "l", STRATEGY_PRESETS["layerwise_magnitude"], 0.5, 0)
    with pytest.raises(RecipeError, match="not the weights the recipe was built from"):
        apply_recipe(make_neox(seed=5), recipe)


def test_apply_rejects_missing_tensor_and_dtype(neox):
    recipe = build_recipe(neox, "l", STRATEGY_PRESETS["layerwise_magnitude"], 0.5, 0)

    renamed = copy.deepcopy(recipe)
    renamed["tensors"][0]["name"] = "gpt_neox.layers.0.attention.qkv.weight"
    with pytest.raises(RecipeError, match="'gpt_neox.layers.0.attention.qkv.weight'.*no such Linear"):
        apply_recipe(copy.deepcopy(neox), renamed)

    with pytest.raises(RecipeError, match="recipe dtype float32, model dtype bfloat16"):
        apply_recipe(copy.deepcopy(neox).to(torch.bfloat16), recipe)


def test_compute_mask_rejects_shape_mismatch(neox):
    recipe = build_recipe(neox, "l", STRATEGY_PRESETS["layerwise_magnitude"], 0.5, 0)
    with pytest.raises(RecipeError, match=r"recipe has shape \[192, 64\].*model has shape \[64, 64\]"):
        compute_mask(neox.gpt_neox.layers[0].attention.dense.weight, recipe["tensors"][0], "magnitude")


# Export


def make_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"[UNK]": 0, **{f"w{i}": i for i in range(1, 256)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")


def test_export_reloads_with_pruned_weights(neox, tmp_path):
    recipe = build_recipe(neox, "all_linear", STRATEGY_PRESETS["all_linear"], 0.7, 0)
    model = copy.deepcopy(neox)
    totals = export_pruned(model, make_tokenizer(), recipe, tmp_path / "export")

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "export")
    zeros = sum(zero_count(reloaded.get_parameter(entry["name"])) for entry in recipe["tensors"])
    assert zeros == recipe["total_pruned"]
    assert totals["total_pruned"] == recipe["total_pruned"]
    assert read_recipe(tmp_path / "export" / RECIPE_FILENAME) == recipe
    assert torch.equal(reloaded.gpt_neox.embed_in.weight, neox.gpt_neox.embed_in.weight)
    assert (tmp_path / "export" / "tokenizer.json").exists()


# Another architecture


def test_llama_resolves_without_neox_paths():
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    spec = {
        "criterion": "magnitude",
        "scope": "global",
        "modules": ["self_attn.q_proj", "mlp.down_proj", "lm_head"],
        "layers": {"start": 1, "stop": 3},
    }
    recipe = build_recipe(model, "llama", spec, 0.5, 0)
    pruned_model = copy.deepcopy(model)
    apply_recipe(pruned_model, recipe)

    assert [entry["name"] for entry in recipe["tensors"]] == [
        "model.layers.1.self_attn.q_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
        "model.layers.2.self_attn.q_proj.weight",
        "model.layers.2.mlp.down_proj.weight",
        "lm_head.weight",
    ]
    assert recipe["total_pruned"] == round(0.5 * recipe["total_numel"])
    for name, tensor in model.model.layers[0].state_dict().items():
        assert torch.equal(pruned_model.model.layers[0].state_dict()[name], tensor), name
    assert torch.equal(pruned_model.model.embed_tokens.weight, model.model.embed_tokens.weight)


def test_tied_output_embedding_logs_warning(caplog):
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    spec = {"criterion": "magnitude", "scope": "global", "modules": ["lm_head"], "layers": "all"}
    with caplog.at_level("WARNING", logger="memprune.strategies"):
        names = resolve_strategy(model, "tied", spec)

    assert names == ["lm_head"]
    assert "'lm_head' shares its weight with 'model.embed_tokens.weight'" in caplog.text
