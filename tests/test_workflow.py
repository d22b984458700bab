"""End-to-end runs of the workflow on a tiny config, through a real Snakemake from a temporary folder."""

import json
import subprocess

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from conftest import REPO, SNAKEMAKE, tiny_config, write_config
from memprune.provenance import read_parquet_provenance

pytestmark = pytest.mark.slow


def run_snakemake(workdir, config_path, *arguments):
    command = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--configfile", str(config_path), "--directory", str(workdir), "--cores", "2", *arguments]
    return subprocess.run(command, capture_output=True, text=True, cwd=workdir, timeout=1200)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    config = tiny_config(workdir)
    config_path = write_config(workdir / "tiny.yaml", config)
    result = run_snakemake(workdir, config_path)
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir, config, config_path


def test_workflow_writes_member_and_nonmember_tables(finished_run):
    workdir, config, _ = finished_run
    window = max(config["memorization"]["prefix_lengths"]) + config["memorization"]["suffix_length"]
    for split, count in (("members", 48), ("nonmembers", 48)):
        table = pq.read_table(workdir / f"results/data/minipile/{split}.parquet")
        assert table.column_names == ["sample_id", "source", "doc_id", "token_offset", "input_ids", "text", "duplicates"]
        assert table.num_rows == count
        assert {len(ids) for ids in table.column("input_ids").to_pylist()} == {window}
        provenance = read_parquet_provenance(workdir / f"results/data/minipile/{split}.parquet")
        assert len(provenance["config_digest"]) == 64
        assert provenance["packages"]["torch"].startswith("2.13.0")

    members = pq.read_table(workdir / "results/data/minipile/members.parquet")
    assert sorted(set(members.column("duplicates").to_pylist())) == [1, 4]
    background = pq.read_table(workdir / "results/data/minipile/background.parquet")
    assert background.num_rows == 64
    member_windows = {tuple(ids) for ids in members.column("input_ids").to_pylist()}
    assert not member_windows & {tuple(ids) for ids in background.column("input_ids").to_pylist()}
    assert set(pq.read_table(workdir / "results/data/minipile/nonmembers.parquet").column("duplicates").to_pylist()) == {0}


def test_workflow_model_reloads_like_a_hub_model(finished_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    workdir, _, _ = finished_run
    folder = workdir / "results/models/pythia-demo"
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert type(model).__name__ == "GPTNeoXForCausalLM"
    assert model.config.use_parallel_residual is True
    assert model.config.hidden_size == 32
    assert tokenizer("def f():", add_special_tokens=False)["input_ids"][0] != tokenizer.eos_token_id
    history = json.loads((folder / "training.json").read_text())
    assert 0.0 <= history["exact_match"]["members"] <= 1.0
    assert history["exact_match"]["k"] == 16


def test_workflow_summary_covers_every_cell(finished_run):
    workdir, _, _ = finished_run
    summary = pl.read_csv(workdir / "results/tables/summary.csv")
    cells = set(zip(summary["strategy"], summary["sparsity"], summary["k"]))
    assert cells == {(strategy, sparsity, k) for strategy, sparsity in [("dense", 0), ("global_magnitude", 50), ("attention_only", 50)] for k in (8, 16)}
    rates = summary["extraction_rate"].to_numpy()
    assert np.all((rates >= 0) & (rates <= 1))
    assert np.all(summary["extraction_rate_low"].to_numpy() <= rates)
    assert np.all(summary["token_perplexity"].to_numpy() > 1)


def test_workflow_recipes_prune_exact_counts(finished_run):
    workdir, _, _ = finished_run
    recipe = json.loads((workdir / "results/pruning/pythia-demo/global_magnitude/50.json").read_text())
    assert recipe["total_pruned"] == round(0.5 * recipe["total_numel"])
    assert recipe["provenance"]["model"] == "pythia-demo"


def test_workflow_writes_every_figure(finished_run):
    workdir, _, _ = finished_run
    for name in ("extraction_vs_sparsity", "extraction_vs_prefix_length", "perplexity_vs_sparsity", "extraction_vs_perplexity", "mia_auc_vs_sparsity", "extraction_vs_duplicates"):
        for suffix in (".pdf", ".png"):
            path = workdir / "results/figures/pythia-demo" / f"{name}{suffix}"
            assert path.stat().st_size > 1000, path


def test_reference_mode_agrees_on_trained_demo_model(finished_run):
    """The one-pass scorer and model.generate agree on every sample at every k of the trained model."""
    from memprune.models import ModelSpec, load_model
    from memprune.scoring import compare_modes, score_memorization, score_memorization_generate
    from memprune.stages import read_samples

    workdir, config, _ = finished_run
    model = load_model(ModelSpec(path=workdir / "results/models/pythia-demo"))
    memorization = config["memorization"]
    matches = 0
    for split in ("members", "nonmembers"):
        sample_ids, input_ids = read_samples(workdir / f"results/data/minipile/{split}.parquet")
        arguments = (model, input_ids, sample_ids, split[:-1], memorization["prefix_lengths"], memorization["suffix_length"])
        fast = score_memorization(*arguments, batch_size=16)
        reference = score_memorization_generate(*arguments, batch_size=16)
        report = compare_modes(fast, reference)
        assert report["n_rows"] == len(sample_ids) * len(memorization["prefix_lengths"])
        assert report["n_unexplained"] == 0, report["disagreements"]
        assert report["agree"]
        matches += sum(fast.column("exact_match").to_pylist())
    assert matches > 0, "the demo model memorized nothing, so agreement on exact matches was not tested"


def test_export_target_writes_pruned_checkpoint(finished_run):
    from transformers import AutoModelForCausalLM

    workdir, _, config_path = finished_run
    target = workdir / "results/export/pythia-demo/attention_only/50"
    result = run_snakemake(workdir, config_path, str(target / "config.json"))
    assert result.returncode == 0, result.stderr[-3000:]

    recipe = json.loads((target / "pruning_recipe.json").read_text())
    parameters = dict(AutoModelForCausalLM.from_pretrained(target).named_parameters())
    zeros = sum(int((parameters[tensor["name"]] == 0).sum()) for tensor in recipe["tensors"])
    assert zeros == recipe["total_pruned"] == round(0.5 * recipe["total_numel"])


def test_workflow_second_run_has_nothing_to_do(finished_run):
    workdir, _, config_path = finished_run
    result = run_snakemake(workdir, config_path, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_workflow_same_config_same_numbers(finished_run, tmp_path):
    workdir, config, _ = finished_run
    config["results_dir"] = str(tmp_path / "results")
    config_path = write_config(tmp_path / "again.yaml", config)
    result = run_snakemake(tmp_path, config_path, str(tmp_path / "results/scores/pythia-demo/dense/0.parquet"))
    assert result.returncode == 0, result.stderr[-3000:]
    first = pl.read_parquet(workdir / "results/scores/pythia-demo/dense/0.parquet")
    second = pl.read_parquet(tmp_path / "results/scores/pythia-demo/dense/0.parquet")
    assert first.equals(second)


def test_workflow_failed_extraction_leaves_no_output(tmp_path):
    config = tiny_config(tmp_path)
    config["corpora"]["minipile"]["n_members"] = 10**6
    config_path = write_config(tmp_path / "greedy.yaml", config)
    result = run_snakemake(tmp_path, config_path, str(tmp_path / "results/data/minipile/members.parquet"))
    assert result.returncode != 0
    log = (tmp_path / "results/logs/extract/minipile.log").read_text()
    assert "sampling 1000000 members and 64 background windows together" in log
    assert "requested 1000064 member samples" in log
    assert not (tmp_path / "results/data/minipile/members.parquet").exists()
