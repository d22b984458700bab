"""Entry points of the workflow's stages: read inputs, call the library, write the artifacts.

The rule scripts under workflow/scripts are thin wrappers around these functions, which take plain
paths and config mappings, so each stage can be run and tested without Snakemake.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from memprune import config as memprune_config
from memprune.provenance import make_provenance, write_json_atomic, write_parquet_atomic

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


def run_train_tokenizer(shards: list[str], vocab_size: int, out_dir: str) -> None:
    """Train the demo tokenizer on every document of the member shards."""
    from memprune.demo_model import train_bpe_tokenizer
    from memprune.pile import ReadStats, iter_shards

    started = time.perf_counter()
    stats = ReadStats()
    texts = (document.text for document in iter_shards(shards, stats))
    tokenizer = train_bpe_tokenizer(texts, vocab_size)
    tokenizer.save_pretrained(out_dir)
    log.info(
        "trained a %d-entry byte-level BPE tokenizer on %d documents (%s skipped lines) in %.1f s",
        len(tokenizer), stats.documents, dict(stats.skipped), time.perf_counter() - started,
    )


def run_extract(
    corpus: dict,
    corpus_name: str,
    tokenizer_model: str,
    tokenizer_spec: dict,
    tokenizer_files: list[str],
    window_length: int,
    seed: int,
    members_path: str,
    nonmembers_path: str,
    report_path: str,
) -> None:
    """Sample the member and non-member tables of one corpus."""
    from memprune.extraction import assign_duplicates, sample_split, windows_to_table

    tokenizer_dir = str(Path(tokenizer_files[0]).parent) if tokenizer_files else None
    tokenizer = load_scoring_tokenizer(tokenizer_model, tokenizer_spec, tokenizer_dir)
    digest_source = {"corpus": corpus, "window_length": window_length, "seed": seed, "tokenizer_model": tokenizer_model}
    reports = {}

    for split, count_key, out_path in (
        ("member", "n_members", members_path),
        ("nonmember", "n_nonmembers", nonmembers_path),
    ):
        source = corpus[f"{split}s"]
        windows, report = sample_split(
            corpus, source, tokenizer, window_length, corpus[count_key], seed, split, checkpoint_step(tokenizer_spec)
        )
        schedule = corpus.get("duplicates_schedule")
        if split == "member":
            duplicates = assign_duplicates(len(windows), schedule)
        else:
            # Non-members are never trained on: zero is a known count wherever counts are tracked.
            duplicates = [0 if schedule else None] * len(windows)

        table = windows_to_table(windows, tokenizer, duplicates)
        provenance = make_provenance(
            digest_source,
            corpus=corpus_name,
            split=split,
            tokenizer=getattr(tokenizer, "name_or_path", None) or tokenizer_model,
            tokenizer_model=tokenizer_model,
            window_length=window_length,
            extraction=report,
        )
        write_parquet_atomic(out_path, table, provenance)
        reports[split] = report
        log.info("wrote %d %s samples of %d tokens to %s", table.num_rows, split, window_length, out_path)

    write_json_atomic(report_path, {"corpus": corpus_name, "splits": reports, "provenance": make_provenance(digest_source)})


def run_train_model(
    model_name: str,
    spec: dict,
    memorization: dict,
    seed: int,
    members_path: str,
    nonmembers_path: str,
    tokenizer_dir: str,
    out_dir: str,
    history_path: str,
) -> None:
    """Train the demo model on the members, report its memorization, save it with its tokenizer."""
    import torch
    from transformers import AutoTokenizer

    from memprune.demo_model import build_gpt_neox, save_model_folder, teacher_forced_exact_match, train_causal_lm

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    members = read_sample_ids(members_path)
    nonmembers = read_sample_ids(nonmembers_path)
    duplicates = pq.read_table(members_path, columns=["duplicates"]).column("duplicates").to_pylist()
    duplicates = [1 if count is None else count for count in duplicates]

    model = build_gpt_neox(spec["architecture"], len(tokenizer), tokenizer.eos_token_id)
    training = {"epochs": 10, "batch_size": 32, "learning_rate": 3e-3, "warmup_steps": 50, "weight_decay": 0.0}
    training.update(spec.get("training", {}))
    started = time.perf_counter()
    history = train_causal_lm(model, members, duplicates, seed=seed, **training)
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


def call_with_oom_backoff(call, batch_size: int, description: str):
    """Run `call(batch_size)`, halving the batch size and starting over after an out-of-memory error.

    Results do not depend on the batch size, so a retry at a smaller size gives the same numbers.
    """
    import torch

    while True:
        try:
            result = call(batch_size)
            log.info("%s: batch size %d", description, batch_size)
            return result
        except torch.OutOfMemoryError:
            if batch_size == 1:
                raise
            batch_size //= 2
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            log.warning("%s: out of memory, retrying with batch size %d", description, batch_size)


def read_samples(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (sample_ids, input_ids) of a members or non-members table."""
    sample_ids = pq.read_table(path, columns=["sample_id"]).column("sample_id").to_numpy()
    return sample_ids, read_sample_ids(path)


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


def run_perplexity_documents(
    corpus: dict,
    corpus_name: str,
    tokenizer_model: str,
    tokenizer_spec: dict,
    tokenizer_files: list[str],
    max_tokens: int | None,
    out_path: str,
) -> None:
    """Tokenize held-out documents, in shard order, until `max_tokens` tokens are collected."""
    import pyarrow as pa

    from memprune.pile import ReadStats, iter_shards

    tokenizer_dir = str(Path(tokenizer_files[0]).parent) if tokenizer_files else None
    tokenizer = load_scoring_tokenizer(tokenizer_model, tokenizer_spec, tokenizer_dir)
    source = corpus["nonmembers"]
    file_format = source.get("format", corpus.get("format", "pile_jsonl"))
    if file_format != "pile_jsonl":
        raise ValueError(
            f"corpus {corpus_name}: perplexity needs non-member documents in pile_jsonl format, not {file_format}"
        )

    stats = ReadStats()
    rows = {"doc_id": [], "source": [], "text": [], "input_ids": []}
    total_tokens = 0
    for document in iter_shards(source["paths"], stats, corpus.get("pile_set_names")):
        token_ids = tokenizer(document.text, add_special_tokens=False)["input_ids"]
        rows["doc_id"].append(document.doc_id)
        rows["source"].append(document.pile_set_name)
        rows["text"].append(document.text)
        rows["input_ids"].append(np.asarray(token_ids, dtype=np.int32))
        total_tokens += len(token_ids)
        if max_tokens is not None and total_tokens >= max_tokens:
            break

    if not rows["doc_id"]:
        raise ValueError(f"corpus {corpus_name}: no usable non-member document in {', '.join(source['paths'])}")
    table = pa.table({**rows, "input_ids": pa.array(rows["input_ids"], type=pa.list_(pa.int32()))})
    provenance = make_provenance(
        {"corpus": corpus, "max_tokens": max_tokens, "tokenizer_model": tokenizer_model},
        corpus=corpus_name,
        tokenizer_model=tokenizer_model,
        read=stats.as_dict(),
        tokens=total_tokens,
    )
    write_parquet_atomic(out_path, table, provenance)
    log.info("kept %d documents, %d tokens (budget %s); read %s", table.num_rows, total_tokens, max_tokens, stats.as_dict())


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


def run_aggregate(
    score_paths: list[str],
    perplexity_paths: list[str],
    members_paths: dict[str, str],
    nonmembers_paths: dict[str, str],
    tokenizer_loaders: dict[str, tuple],
    grid: list[tuple[str, str, int]],
    memorization: dict,
    membership_inference: dict,
    summary_parquet: str,
    summary_csv: str,
    duplication_parquet: str,
) -> None:
    """Join every grid cell's scores and perplexity into the summary and duplication tables.

    Args:
        members_paths / nonmembers_paths: sample tables per model.
        tokenizer_loaders: per model, the arguments of `load_scoring_tokenizer`, to decode suffix texts.
    """
    import polars as pl

    from memprune.mia import decode_suffix_texts
    from memprune.summary import build_duplication_table, build_summary

    perplexities = {}
    for cell, path in zip(grid, perplexity_paths):
        with open(path, encoding="utf-8") as stream:
            perplexities[cell] = json.load(stream)

    summaries, duplications = [], []
    for model in dict.fromkeys(model for model, _, _ in grid):
        tokenizer = load_scoring_tokenizer(*tokenizer_loaders[model])
        suffix_texts = {}
        for split, path in (("member", members_paths[model]), ("nonmember", nonmembers_paths[model])):
            sample_ids, input_ids = read_samples(path)
            suffix_texts[split] = decode_suffix_texts(
                sample_ids, input_ids, memorization["suffix_length"], tokenizer.decode
            )
        cells = [(cell, path) for cell, path in zip(grid, score_paths) if cell[0] == model]
        scores = [(*cell, path) for cell, path in cells]
        summaries.append(
            build_summary(
                scores,
                {cell: perplexities[cell] for cell, _ in cells},
                suffix_texts,
                members_paths[model],
                nonmembers_paths[model],
                fpr=membership_inference.get("target_fpr", 0.01),
            )
        )
        duplications.append(build_duplication_table(scores, members_paths[model]))

    summary = pl.concat(summaries)
    duplication = pl.concat(duplications)
    _write_polars(summary, summary_parquet, {"grid": grid, "memorization": memorization})
    _write_polars(duplication, duplication_parquet, {"grid": grid, "memorization": memorization})
    _write_csv_atomic(summary, summary_csv)
    log.info("summary: %d rows, %d columns; duplication table: %d rows", summary.height, summary.width, duplication.height)


def _write_polars(frame, path: str, digest_source: dict) -> None:
    write_parquet_atomic(path, frame.to_arrow(), make_provenance(digest_source))


def _write_csv_atomic(frame, path: str) -> None:
    import os

    temporary = f"{path}.tmp"
    frame.write_csv(temporary)
    os.replace(temporary, path)


def run_figures(summary_path: str, duplication_path: str, out_dir: str, k: int, sparsity: int, expected: list[str]) -> None:
    """Render every figure and check that each file the workflow expects was written."""
    import polars as pl

    from memprune.plots.all_figures import make_all_figures

    summary = pl.read_parquet(summary_path)
    duplication = pl.read_parquet(duplication_path)
    written = {str(path) for path in make_all_figures(summary, duplication if duplication.height else None, out_dir, k, sparsity)}
    missing = [path for path in expected if str(Path(path)) not in {str(Path(item)) for item in written}]
    if missing:
        raise RuntimeError(f"figures not written: {', '.join(missing)}")
    log.info("wrote %d figure files to %s", len(written), out_dir)


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
