"""Shared fixtures: repository paths, Pile-format shard writers and a tiny workflow config."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
import zstandard

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def write_shard(path: Path, records: list, compress: bool | None = None) -> Path:
    """Write Pile-format JSON lines; records that are strings are written as raw lines."""
    lines = [record if isinstance(record, str) else json.dumps(record) for record in records]
    payload = ("\n".join(lines) + "\n").encode("utf-8")
    if compress if compress is not None else path.suffix == ".zst":
        payload = zstandard.ZstdCompressor(level=3).compress(payload)
    path.write_bytes(payload)
    return path


def pile_record(text: str, pile_set_name: str = "Github") -> dict:
    return {"text": text, "meta": {"pile_set_name": pile_set_name}}


def tiny_config(tmp_path: Path, **overrides) -> dict:
    """A config that runs the whole workflow in about a minute: small corpus sample, tiny model."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    corpus = config["corpora"]["minipile"]
    corpus["members"]["paths"] = [str(REPO / "resources/minipile/train.jsonl.zst")]
    corpus["nonmembers"]["paths"] = [str(REPO / "resources/minipile/val.jsonl.zst")]
    corpus["n_members"] = 48
    corpus["n_nonmembers"] = 48
    corpus["duplicates_schedule"] = [1, 4]
    corpus["background_windows"] = 64
    model = config["models"]["pythia-demo"]
    model["tokenizer"]["vocab_size"] = 512
    model["architecture"] = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "context_length": 64}
    model["training"] = {"epochs": 40, "batch_size": 16, "learning_rate": 0.01, "warmup_steps": 10, "weight_decay": 0.0}
    config["memorization"].update({"prefix_lengths": [8, 16], "suffix_length": 16, "batch_size": 16})
    config["perplexity"].update({"window": 64, "max_tokens": 3000, "batch_size": 8})
    config["strategies"] = {name: config["strategies"][name] for name in ("global_magnitude", "attention_only")}
    config["sparsities"] = [50]
    config["figures"] = {"k": 16, "sparsity": 50}
    config["results_dir"] = str(tmp_path / "results")
    for key, value in overrides.items():
        config[key] = value
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="module")
def single_thread():
    """Run tiny models on one torch thread: on a busy 2-core machine, two threads made them several times slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
