"""Tests of model specs, availability checks and loading, on a real tiny GPT-NeoX saved to tmp_path."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

from memprune.models import (
    ModelNotAvailableError,
    ModelSpec,
    ModelSpecError,
    check_model_available,
    eos_token_id,
    load_model,
    load_tokenizer,
    model_context_length,
    model_provenance,
    pad_token_id,
    resolve_model_folder,
    vocab_sizes,
)

EMBEDDING_ROWS = 384
CONTEXT_LENGTH = 96
SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "pruning removes the weights of smallest magnitude",
    "a language model may repeat its training data word for word",
]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A save_pretrained folder of a tiny GPT-NeoX whose embedding is larger than its tokenizer."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(SENTENCES, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
    )

    config = GPTNeoXConfig(
        vocab_size=EMBEDDING_ROWS,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=CONTEXT_LENGTH,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny-neox"
    GPTNeoXForCausalLM(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    assert len(fast) < EMBEDDING_ROWS
    return folder


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, model_folder):
    """An HF_HOME whose hub cache contains the tiny model as `tiny-org/tiny-neox` at branch `step10`."""
    home = tmp_path / "hf_home"
    repo = home / "hub" / "models--tiny-org--tiny-neox"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(model_folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "step10").write_text(commit)

    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    return commit


def test_spec_from_config_reads_keys_and_defaults(model_folder):
    spec = ModelSpec.from_config({"path": str(model_folder), "dtype": "bfloat16", "train": {"steps": 5}})
    hub = ModelSpec.from_config({"hub_id": "EleutherAI/pythia-160m-deduped", "revision": "step143000"})

    assert spec.path == model_folder
    assert spec.hub_id is None
    assert spec.revision == "main"
    assert spec.dtype == "bfloat16"
    assert hub.hub_id == "EleutherAI/pythia-160m-deduped"
    assert hub.revision == "step143000"
    assert hub.dtype == "float32"
    assert str(hub) == "EleutherAI/pythia-160m-deduped@step143000 (float32)"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "model 'pythia': a model needs exactly one of 'path'"),
        ({"path": "a", "hub_id": "b/c"}, "needs exactly one of 'path' .* got path=.*'a'.*hub_id='b/c'"),
        ({"hub_id": "b/c", "dtype": "int8"}, r"dtype 'int8' is not supported; valid dtypes are \['float32'"),
        ({"hub_id": "not a repo"}, "hub_id 'not a repo' is not a valid repository id"),
        ({"path": "models", "revision": "../x"}, "revision '../x' cannot name a subfolder of models"),
        ({"hub_id": "b/c", "revision": ""}, "revision '' is not valid"),
        ({"hub_id": "b/c", "revision": 143000}, "revision 143000 is not valid"),
    ],
)
def test_spec_from_config_rejects_bad_values(config, message):
    with pytest.raises(ModelSpecError, match=message):
        ModelSpec.from_config(config, name="pythia")


def test_check_model_available_saved_folder(model_folder):
    check_model_available(ModelSpec(path=model_folder))


def test_check_model_available_missing_folder(tmp_path):
    with pytest.raises(ModelNotAvailableError, match=r"model folder .*nowhere does not exist"):
        check_model_available(ModelSpec(path=tmp_path / "nowhere"))


def test_check_model_available_uncached_hub_id(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    spec = ModelSpec(hub_id="EleutherAI/pythia-160m-deduped", revision="step1000")

    with pytest.raises(ModelNotAvailableError) as caught:
        check_model_available(spec)

    message = str(caught.value)
    assert "model EleutherAI/pythia-160m-deduped at revision 'step1000'" in message
    assert str(tmp_path / "empty_home" / "hub") in message
    assert "hf download EleutherAI/pythia-160m-deduped --revision step1000" in message
    assert "local 'path'" in message


def test_cached_hub_revision_loads_offline(hub_cache):
    spec = ModelSpec(hub_id="tiny-org/tiny-neox", revision="step10")

    check_model_available(spec)
    model = load_model(spec)

    assert resolve_model_folder(spec).name == hub_cache
    assert model_provenance(spec)["commit"] == hub_cache
    assert model.config.vocab_size == EMBEDDING_ROWS
    with pytest.raises(ModelNotAvailableError, match="tiny-org/tiny-neox at revision 'step20'"):
        check_model_available(ModelSpec(hub_id="tiny-org/tiny-neox", revision="step20"))


def test_local_folder_per_revision(tmp_path, model_folder):
    shutil.copytree(model_folder, tmp_path / "checkpoints" / "step10")
    folder = tmp_path / "checkpoints"

    assert resolve_model_folder(ModelSpec(path=folder, revision="step10")) == folder / "step10"
    expected = r"checkpoints has no revision 'step20'.*found: \['step10'\]"
    with pytest.raises(ModelNotAvailableError, match=expected):
        check_model_available(ModelSpec(path=folder, revision="step20"))


def test_single_checkpoint_folder_is_revision_main_only(model_folder):
    assert resolve_model_folder(ModelSpec(path=model_folder)) == model_folder
    expected = r"tiny-neox has no revision 'step5': it contains one checkpoint"
    with pytest.raises(ModelNotAvailableError, match=expected):
        check_model_available(ModelSpec(path=model_folder, revision="step5"))


def test_check_model_available_missing_files(tmp_path, model_folder):
    config_only = tmp_path / "config_only"
    config_only.mkdir()
    shutil.copy(model_folder / "config.json", config_only)
    no_tokenizer = tmp_path / "no_tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(model_folder / name, no_tokenizer)

    expected = r"config_only lacks weights: none of \['model.safetensors'"
    with pytest.raises(ModelNotAvailableError, match=expected):
        check_model_available(ModelSpec(path=config_only))
    with pytest.raises(ModelNotAvailableError, match=r"no_tokenizer lacks a tokenizer"):
        check_model_available(ModelSpec(path=no_tokenizer))
    check_model_available(ModelSpec(path=no_tokenizer), need_tokenizer=False)


def test_context_length_is_read_without_weights(tmp_path, model_folder):
    config_only = tmp_path / "config_only"
    config_only.mkdir()
    shutil.copy(model_folder / "config.json", config_only)

    assert model_context_length(ModelSpec(path=config_only)) == CONTEXT_LENGTH


def test_context_length_missing_names_the_file(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt_neox"}))

    with pytest.raises(ValueError, match=r"broken/config.json: max_position_embeddings is None"):
        model_context_length(ModelSpec(path=folder))


def test_availability_check_does_not_import_torch(model_folder):
    script = (
        "import sys\n"
        "from memprune.models import ModelSpec, check_model_available, model_context_length\n"
        f"spec = ModelSpec(path={str(model_folder)!r})\n"
        "check_model_available(spec)\n"
        "print(model_context_length(spec), 'torch' in sys.modules)\n"
    )

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert result.stdout.split() == [str(CONTEXT_LENGTH), "False"]


@pytest.mark.parametrize(("dtype", "torch_dtype"), [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_load_model_dtype_and_logits_width(model_folder, dtype, torch_dtype):
    spec = ModelSpec(path=model_folder, dtype=dtype)

    model = load_model(spec, device="cpu")
    tokenizer = load_tokenizer(spec)
    input_ids = torch.tensor([tokenizer.encode(SENTENCES[0])])
    with torch.no_grad():
        logits = model(input_ids).logits

    assert not model.training
    assert next(model.parameters()).dtype == torch_dtype
    assert logits.dtype == torch_dtype
    assert logits.shape == (1, input_ids.shape[1], EMBEDDING_ROWS)


def test_vocab_sizes_and_special_tokens(model_folder):
    spec = ModelSpec(path=model_folder)
    model = load_model(spec)
    tokenizer = load_tokenizer(spec)
    tokenizer_length = len(tokenizer)

    sizes = vocab_sizes(model, tokenizer)

    assert sizes.logits == EMBEDDING_ROWS
    assert sizes.tokenizer == tokenizer_length < EMBEDDING_ROWS
    assert eos_token_id(tokenizer, model) == 0
    assert tokenizer.pad_token_id is None
    assert pad_token_id(tokenizer) == 0
    assert len(tokenizer) == tokenizer_length
