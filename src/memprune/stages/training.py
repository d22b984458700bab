"""The demo model's training stage."""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow.parquet as pq

from memprune.provenance import make_provenance, write_json_atomic
from memprune.stages.common import read_sample_ids

log = logging.getLogger(__name__)


def run_train_model(
    model_name: str,
    spec: dict,
    memorization: dict,
    seed: int,
    members_path: str,
    nonmembers_path: str,
    background_path: str,
    tokenizer_dir: str,
    out_dir: str,
    history_path: str,
) -> None:
    """Train the demo model on the members and background windows, report its memorization, save it.

    Each member is repeated its `duplicates` count per epoch and each background window appears once.
    """
    import torch
    from transformers import AutoTokenizer

    from memprune.demo_model import build_gpt_neox, save_model_folder, teacher_forced_exact_match, train_causal_lm

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    members = read_sample_ids(members_path)
    nonmembers = read_sample_ids(nonmembers_path)
    duplicates = pq.read_table(members_path, columns=["duplicates"]).column("duplicates").to_pylist()
    duplicates = [1 if count is None else count for count in duplicates]
    background = read_sample_ids(background_path) if pq.read_metadata(background_path).num_rows else members[:0]
    training_windows = np.concatenate([members, background])
    training_duplicates = duplicates + [1] * len(background)

    model = build_gpt_neox(spec["architecture"], len(tokenizer), tokenizer.eos_token_id)
    training = {"epochs": 10, "batch_size": 32, "learning_rate": 3e-3, "warmup_steps": 50, "weight_decay": 0.0}
    training.update(spec.get("training", {}))
    started = time.perf_counter()
    history = train_causal_lm(model, training_windows, training_duplicates, seed=seed, **training)
    seconds = time.perf_counter() - started

    k = max(memorization["prefix_lengths"])
    suffix_length = memorization["suffix_length"]
    member_match = teacher_forced_exact_match(model, members, k, suffix_length)
    nonmember_match = teacher_forced_exact_match(model, nonmembers, k, suffix_length)
    by_duplicates = {
        int(count): float(member_match[np.asarray(duplicates) == count].mean()) for count in sorted(set(duplicates))
    }
    log.info(
        "trained in %.1f s; teacher-forced exact match of the %d-token suffix from a %d-token prefix: "
        "members %.1f%% (%d/%d), non-members %.1f%% (%d/%d); members by duplicates %s",
        seconds, suffix_length, k,
        100 * member_match.mean(), member_match.sum(), len(member_match),
        100 * nonmember_match.mean(), nonmember_match.sum(), len(nonmember_match),
        {count: f"{rate:.1%}" for count, rate in by_duplicates.items()},
    )

    save_model_folder(model, tokenizer, out_dir)
    write_json_atomic(
        history_path,
        {
            "model": model_name,
            "parameters": sum(parameter.numel() for parameter in model.parameters()),
            "training": training,
            "training_windows": {"members": len(members), "background": len(background)},
            "seconds": seconds,
            "history": history,
            "exact_match": {
                "k": k,
                "suffix_length": suffix_length,
                "members": float(member_match.mean()),
                "nonmembers": float(nonmember_match.mean()),
                "members_by_duplicates": by_duplicates,
            },
            "provenance": make_provenance({"spec": spec, "memorization": memorization, "seed": seed}, model=model_name),
        },
    )
