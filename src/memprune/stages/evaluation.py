"""Model stages of each grid cell: pruning recipes, memorization scores, perplexity, export."""

from __future__ import annotations

import logging
import time

import pyarrow.parquet as pq

from memprune.provenance import make_provenance, write_json_atomic, write_parquet_atomic
from memprune.batching import call_with_oom_backoff
from memprune.stages.common import load_pruned_model, model_identity, read_samples, workflow_model_spec

log = logging.getLogger(__name__)


def run_prune(
    model_name: str,
    spec: dict,
    model_dir: str | None,
    strategy_name: str,
    strategy: dict,
    sparsity_percent: int,
    seed: int,
    recipe_path: str,
) -> None:
    """Build the pruning recipe of one grid cell on a leased device (the CPU when there is none)."""
    from memprune.devices import lease_device
    from memprune.models import load_model
    from memprune.pruning import build_recipe

    with lease_device() as device:
        model = load_model(workflow_model_spec(model_name, spec, model_dir), device)
        started = time.perf_counter()
        recipe = build_recipe(model, strategy_name, strategy, sparsity_percent / 100, seed)
        seconds = time.perf_counter() - started

    recipe["provenance"] = make_provenance(
        {"strategy": strategy, "sparsity": sparsity_percent, "seed": seed},
        **model_identity(model_name, spec, model_dir),
        device=str(device),
    )
    write_json_atomic(recipe_path, recipe)
    log.info(
        "%s at %d%%: pruned %d of %d weights (%.4f) over %d tensors in %.2f s",
        strategy_name, sparsity_percent, recipe["total_pruned"], recipe["total_numel"],
        recipe["achieved_sparsity"], len(recipe["tensors"]), seconds,
    )


def run_score(
    model_name: str,
    spec: dict,
    model_dir: str | None,
    recipe_path: str | None,
    members_path: str,
    nonmembers_path: str,
    memorization: dict,
    scores_path: str,
    cell: dict,
) -> None:
    """Score extraction of every member and non-member at every prefix length for one grid cell."""
    import pyarrow as pa
    import torch

    from memprune.devices import lease_device
    from memprune.scoring import score_memorization, score_memorization_generate

    score = score_memorization_generate if memorization.get("reference_mode") else score_memorization
    dtype = memorization.get("dtype", "float32")
    tables = []
    with lease_device() as device:
        model = load_pruned_model(model_name, spec, model_dir, recipe_path, device, dtype)
        for split, path in (("member", members_path), ("nonmember", nonmembers_path)):
            sample_ids, input_ids = read_samples(path)
            needed = max(memorization["prefix_lengths"]) + memorization["suffix_length"]
            if input_ids.shape[1] < needed:
                raise ValueError(
                    f"{path}: samples hold {input_ids.shape[1]} tokens, but max(prefix_lengths) + suffix_length = "
                    f"{needed}; re-run extraction for this config"
                )

            tables.append(call_with_oom_backoff(
                lambda batch_size, sample_ids=sample_ids, input_ids=input_ids, split=split: score(
                    model, input_ids, sample_ids, split, memorization["prefix_lengths"],
                    memorization["suffix_length"], batch_size=batch_size, device=device,
                ),
                memorization.get("batch_size", 64),
                f"scoring {split}s",
            ))

    table = pa.concat_tables(tables).sort_by([("split", "ascending"), ("k", "ascending"), ("sample_id", "ascending")])
    provenance = make_provenance(
        {"memorization": memorization, **cell},
        **{**model_identity(model_name, spec, model_dir), **cell},
        device=str(device),
        torch_threads=torch.get_num_threads(),
    )
    write_parquet_atomic(scores_path, table, provenance)
    log.info("wrote %d score rows to %s", table.num_rows, scores_path)


def run_perplexity(
    model_name: str,
    spec: dict,
    model_dir: str | None,
    recipe_path: str | None,
    documents_path: str,
    settings: dict,
    dtype: str,
    out_path: str,
    cell: dict,
) -> None:
    """Measure held-out perplexity of one grid cell's pruned model."""
    from memprune.devices import lease_device
    from memprune.perplexity import compute_perplexity

    table = pq.read_table(documents_path, columns=["text", "input_ids"])
    texts = table.column("text").to_pylist()
    token_documents = table.column("input_ids").to_pylist()

    with lease_device() as device:
        model = load_pruned_model(model_name, spec, model_dir, recipe_path, device, dtype)
        prefix_token_id = model.config.eos_token_id
        if prefix_token_id is None:
            raise ValueError(f"model {model_name}: config has no eos_token_id to place before each document")
        result = call_with_oom_backoff(
            lambda batch_size: compute_perplexity(
                model, token_documents, texts, settings.get("window", 2048), batch_size, prefix_token_id, device=device
            ),
            settings.get("batch_size", 8),
            "perplexity",
        )

    result["provenance"] = make_provenance(
        {"perplexity": settings, "dtype": dtype, **cell}, **{**model_identity(model_name, spec, model_dir), **cell}
    )
    result.update(cell)
    write_json_atomic(out_path, result)
    log.info(
        "%s: token perplexity %.4g, word perplexity %.4g, %.4f bits per byte over %d tokens",
        cell, result["token_perplexity"], result["word_perplexity"], result["bits_per_byte"], result["n_tokens"],
    )


def run_export(model_name: str, spec: dict, model_dir: str | None, recipe_path: str | None, out_dir: str) -> None:
    """Save a pruned variant as a save_pretrained folder with its tokenizer and recipe."""
    from memprune.models import load_model, load_tokenizer
    from memprune.pruning import export_pruned, read_recipe

    model_spec = workflow_model_spec(model_name, spec, model_dir)
    model = load_model(model_spec, "cpu")
    tokenizer = load_tokenizer(model_spec)
    if recipe_path is None:
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        log.info("exported the dense model %s to %s", model_name, out_dir)
        return
    totals = export_pruned(model, tokenizer, read_recipe(recipe_path), out_dir)
    log.info("exported %s pruned by %s to %s: %s", model_name, recipe_path, out_dir, totals)
