"""The workflow on Pythia-style inputs written in their real formats: a local checkpoint folder per
revision whose embedding is larger than its tokenizer, a Megatron token memmap, token Parquet
files and Pile jsonl.zst shards."""

import json
import subprocess

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO, SNAKEMAKE, write_config
from memprune.demo_model import build_gpt_neox, train_bpe_tokenizer
from memprune.memmap import write_mmap_indexed_dataset
from memprune.pile import ReadStats, iter_shard

pytestmark = pytest.mark.slow

TOKENIZER_SIZE = 400
EMBEDDING_SIZE = 448
STORED_TOKENS = 64


@pytest.fixture(scope="module")
def pythia_like(tmp_path_factory):
    """Write every input file in its real format, and a config that reads them."""
    root = tmp_path_factory.mktemp("pythia")
    texts = [document.text for document in iter_shard(REPO / "resources/minipile/train.jsonl.zst", ReadStats())]
    tokenizer = train_bpe_tokenizer(texts[:120], vocab_size=TOKENIZER_SIZE)
    assert len(tokenizer) <= TOKENIZER_SIZE

    architecture = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "context_length": 128}
    model = build_gpt_neox(architecture, EMBEDDING_SIZE, tokenizer.eos_token_id)
    checkpoint = root / "pythia-tiny" / "step10"
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)

    # Pythia's pre-shuffled training data: fixed-length sequences of uint16 tokens.
    stream = np.concatenate([tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for text in texts[:60]])
    sequence_length = 129
    count = len(stream) // sequence_length
    sequences = stream[: count * sequence_length].reshape(count, sequence_length)
    write_mmap_indexed_dataset(root / "document", list(sequences), dtype=np.uint16)

    # EleutherAI's memorization evaluation files: an index and 64 tokens per row.
    pq.write_table(
        pa.table({"Index": np.arange(count, dtype=np.int64), "Tokens": [row[:STORED_TOKENS].astype(np.uint16) for row in sequences]}),
        root / "memorized_evals.parquet",
    )

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    nonmembers = {"paths": [str(REPO / "resources/minipile/val.jsonl.zst")]}
    config["corpora"] = {
        "pile_memmap": {
            "format": "pythia_memmap",
            "members": {"paths": [str(root / "document")]},
            "nonmembers": {**nonmembers, "format": "pile_jsonl"},
            "n_members": 40,
            "n_nonmembers": 40,
            "tokenizer_model": "pythia-tiny",
        },
        "memorized_evals": {
            "format": "token_parquet",
            "members": {"paths": [str(root / "memorized_evals.parquet")]},
            "nonmembers": {**nonmembers, "format": "pile_jsonl"},
            "n_members": 30,
            "n_nonmembers": 30,
            "tokenizer_model": "pythia-tiny",
        },
    }
    model_entry = {"source": "pretrained", "path": str(root / "pythia-tiny"), "revision": "step10", "dtype": "float32"}
    config["models"] = {
        "pythia-tiny": {**model_entry, "corpus": "pile_memmap"},
        "pythia-tiny-evals": {**model_entry, "corpus": "memorized_evals"},
    }
    config["memorization"].update({"prefix_lengths": [16, 32], "suffix_length": 32, "batch_size": 16})
    config["perplexity"] = {"corpus": "pile_memmap", "window": 128, "max_tokens": 2000, "batch_size": 4}
    config["strategies"] = {name: config["strategies"][name] for name in ("global_magnitude", "all_linear")}
    config["sparsities"] = [30]
    config["figures"] = {"k": 32, "sparsity": 30}
    config["results_dir"] = str(root / "results")
    return root, config


def run_snakemake(workdir, config_path, *arguments):
    command = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--configfile", str(config_path), "--directory", str(workdir), "--cores", "2", *arguments]
    return subprocess.run(command, capture_output=True, text=True, cwd=workdir, timeout=1200)


def test_pythia_formats_run_end_to_end(pythia_like):
    root, config = pythia_like
    result = run_snakemake(root, write_config(root / "config.yaml", config))
    assert result.returncode == 0, result.stderr[-5000:]

    members = pq.read_table(root / "results/data/pile_memmap/members.parquet")
    assert members.num_rows == 40
    assert set(members.column("source").to_pylist()) == {"pythia_memmap"}
    assert set(members.column("token_offset").to_pylist()) == {0}
    assert all(len(ids) == 64 for ids in members.column("input_ids").to_pylist())
    assert members.column("duplicates").null_count == 40

    evals = pq.read_table(root / "results/data/memorized_evals/members.parquet")
    assert evals.num_rows == 30
    assert set(evals.column("source").to_pylist()) == {"token_parquet"}

    summary = pl.read_csv(root / "results/tables/summary.csv")
    assert set(summary["model"]) == {"pythia-tiny", "pythia-tiny-evals"}
    assert summary.height == 2 * 3 * 2

    recipe = json.loads((root / "results/pruning/pythia-tiny/all_linear/30.json").read_text())
    names = [tensor["name"] for tensor in recipe["tensors"]]
    assert any(name.endswith(("embed_out.weight", "lm_head.weight")) for name in names)
    output_tensor = next(tensor for tensor in recipe["tensors"] if tensor["name"].endswith(("embed_out.weight", "lm_head.weight")))
    assert output_tensor["shape"][0] == EMBEDDING_SIZE
    assert recipe["provenance"]["revision"] == "step10"

    for name in ("extraction_vs_sparsity", "perplexity_vs_sparsity"):
        assert (root / f"results/figures/pythia-tiny/{name}.png").stat().st_size > 1000
    assert not (root / "results/figures/pythia-tiny/extraction_vs_duplicates.png").exists()


def test_short_token_parquet_rejected_early(pythia_like, tmp_path):
    root, config = pythia_like
    config = json.loads(json.dumps(config))
    config["memorization"]["prefix_lengths"] = [16, 48]
    config["results_dir"] = str(tmp_path / "results")
    result = run_snakemake(tmp_path, write_config(tmp_path / "long.yaml", config), "-n")
    assert result.returncode != 0
    assert "stores only 64 tokens" in result.stdout + result.stderr
    assert "48 + 32 = 80" in (result.stdout + result.stderr).replace("max(prefix_lengths) + suffix_length = 80", "48 + 32 = 80")


def test_missing_revision_is_rejected_before_any_job(pythia_like, tmp_path):
    root, config = pythia_like
    config = json.loads(json.dumps(config))
    for model in config["models"].values():
        model["revision"] = "step99"
    config["results_dir"] = str(tmp_path / "results")
    result = run_snakemake(tmp_path, write_config(tmp_path / "rev.yaml", config))
    assert result.returncode != 0
    assert "step99" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_uncached_hub_model_is_rejected_before_any_job(pythia_like, tmp_path, monkeypatch):
    root, config = pythia_like
    config = json.loads(json.dumps(config))
    for model in config["models"].values():
        model.pop("path")
        model["hub_id"] = "EleutherAI/pythia-160m-deduped"
        model["revision"] = "step143000"
    config["results_dir"] = str(tmp_path / "results")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = run_snakemake(tmp_path, write_config(tmp_path / "hub.yaml", config))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "EleutherAI/pythia-160m-deduped" in output
    assert "step143000" in output
    assert not (tmp_path / "results").exists()

    planned = run_snakemake(tmp_path, write_config(tmp_path / "hub.yaml", config), "-n")
    assert planned.returncode == 0, planned.stderr[-3000:]
    assert "dry run, not checked further" in planned.stdout + planned.stderr
