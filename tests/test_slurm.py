"""Tests that run Snakemake through the Slurm profile on the one-node cluster of .ci/start-slurm.

Start the cluster first (as root): `.ci/start-slurm`. The tests fail, not skip, when it is down.

The test cluster differs from a real one in three ways, so each run adds overrides on top of
`profiles/slurm`:
- It has no GPUs. A workflow profile written next to the run (`--workflow-profile`) copies the
  profile's `set-resources` with `gpu: 0`, and its partitions, memory and runtime shrunk to fit
  the node. Snakemake replaces a whole `set-resources` block rather than merging it, so the copy
  keeps every other per-rule key.
- It has no accounting database, so `sacct` fails and job states come from `squeue`
  (`--slurm-status-command squeue`), and there is no account to charge (`--slurm-no-account`).
- Jobs take seconds, so the first status check comes after 1 s instead of 40 s.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SLURM_PROFILE = REPO_ROOT / "profiles" / "slurm"

#: Rules that the cluster profile sends to GPU nodes.
GPU_RULES = ("prune", "score", "perplexity")

#: Executor settings the test cluster needs on top of the profile.
TEST_CLUSTER_ARGS = (
    "--slurm-status-command",
    "squeue",
    "--slurm-no-account",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--latency-wait",
    "10",
)

#: Wall-clock limit of a test job, in minutes.
TEST_MAX_RUNTIME_MIN = 30

#: Seconds a Snakemake run through the test cluster may take before the test fails.
RUN_TIMEOUT_S = 900

START_HINT = "Start the test cluster as root with `.ci/start-slurm` (it installs and starts munge and Slurm)."


def require_slurm_cluster() -> dict[str, str | int]:
    """Return the test node's partition, CPUs and memory, or fail the test when the node is not up."""
    if shutil.which("sinfo") is None:
        pytest.fail(f"`sinfo` is not installed, so there is no Slurm cluster to test against. {START_HINT}")

    completed = subprocess.run(
        ["sinfo", "--noheader", "--Node", "--format=%N|%t|%P|%c|%m"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    printed = (completed.stdout + completed.stderr).strip() or "(nothing)"
    if completed.returncode != 0:
        pytest.fail(f"`sinfo` failed with exit status {completed.returncode} and printed: {printed}. {START_HINT}")

    for line in completed.stdout.splitlines():
        node, state, partition, cpus, memory_mb = line.split("|")
        if state in {"idle", "mix", "alloc"} and partition.endswith("*"):
            return {"node": node, "partition": partition.rstrip("*"), "cpus": int(cpus), "memory_mb": int(memory_mb)}
    pytest.fail(f"no Slurm node in the default partition is up (idle, mix or alloc); `sinfo` printed: {printed}. {START_HINT}")


def _fit_to_test_cluster(resources: dict, cluster: dict, keep_gpus: bool) -> dict:
    """Copy a resource mapping with the test node's partition, and CPUs and memory that fit on it.

    Memory is capped at the node's memory per CPU, so every CPU of the node can run a job.
    """
    fitted = dict(resources)
    fitted["slurm_partition"] = cluster["partition"]
    if "mem_mb" in fitted:
        fitted["mem_mb"] = min(int(fitted["mem_mb"]), cluster["memory_mb"] // cluster["cpus"])
    if "runtime" in fitted:
        fitted["runtime"] = min(int(fitted["runtime"]), TEST_MAX_RUNTIME_MIN)
    if "gpu" in fitted and not keep_gpus:
        # Without a GPU the plugin reads cpus_per_task, which GPU rules set to 0, so restore it.
        fitted["gpu"] = 0
        fitted["cpus_per_task"] = "threads"

    # A job asking for more CPUs than the node has would stay pending forever (reason PartitionConfig).
    for cpu_key in ("cpus_per_task", "cpus_per_gpu"):
        value = fitted.get(cpu_key)
        if isinstance(value, int):
            fitted[cpu_key] = min(value, cluster["cpus"])
        elif isinstance(value, str):
            fitted[cpu_key] = f"min({value}, {cluster['cpus']})"
    return fitted


def write_test_workflow_profile(directory: Path, cluster: dict, keep_gpus: bool = False) -> Path:
    """Write a workflow profile that fits `profiles/slurm` to the test cluster and return its folder.

    Args:
        directory: Folder to write `config.yaml` into; created if missing.
        cluster: The node description from `require_slurm_cluster()`.
        keep_gpus: Keep the profile's GPU requests. The test cluster has none, so sbatch rejects them.
    """
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    overrides = {
        "default-resources": _fit_to_test_cluster(profile["default-resources"], cluster, keep_gpus),
        "set-resources": {
            rule: _fit_to_test_cluster(resources, cluster, keep_gpus)
            for rule, resources in profile.get("set-resources", {}).items()
        },
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(overrides, sort_keys=False))
    return directory


def run_through_slurm(
    workdir: Path,
    snakefile: Path,
    configfile: Path | None = None,
    targets: Sequence[str] = (),
    *,
    keep_gpus: bool = False,
    extra_args: Sequence[str] = (),
) -> subprocess.CompletedProcess:
    """Run Snakemake with `profiles/slurm` on the test cluster and return the finished process.

    Fails the calling test when the cluster is not up. The caller checks the exit status, because
    some tests expect a failure.

    Args:
        workdir: Snakemake working directory (`--directory`). The test workflow profile and
            Snakemake's `.snakemake` folder are written there.
        snakefile: The Snakefile to run.
        configfile: Optional config file (`--configfile`).
        targets: Target files or rules. An empty sequence runs the Snakefile's default target.
        keep_gpus: Keep the profile's GPU requests instead of overriding them to 0.
        extra_args: More Snakemake arguments, placed before the targets.
    """
    cluster = require_slurm_cluster()
    workdir = Path(workdir).resolve()
    workflow_profile = write_test_workflow_profile(workdir / ".slurm-test-profile", cluster, keep_gpus)

    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        str(SLURM_PROFILE),
        "--workflow-profile",
        str(workflow_profile),
        "--snakefile",
        str(Path(snakefile).resolve()),
        "--directory",
        str(workdir),
        *TEST_CLUSTER_ARGS,
    ]
    if configfile is not None:
        command += ["--configfile", str(Path(configfile).resolve())]
    command += [*extra_args, *targets]

    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def _output_tail(completed: subprocess.CompletedProcess, lines: int = 60) -> str:
    return "\n".join((completed.stdout + completed.stderr).splitlines()[-lines:])


def _slurm_job(job_id: int) -> dict[str, str]:
    """Return the state, comment and partition of a job that slurmctld still remembers."""
    completed = subprocess.run(
        ["squeue", "--noheader", "--states=all", f"--jobs={job_id}", "--format=%i|%T|%k|%P"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 0, completed.stderr
    job, state, comment, partition = completed.stdout.strip().split("|")
    return {"job": job, "state": state, "comment": comment, "partition": partition}


TWO_RULE_SNAKEFILE = """
localrules: all


rule all:
    input:
        "scores/summary.txt",


# Stands in for a GPU rule of the workflow: records the Slurm job it ran in.
rule prune:
    output:
        "pruning/recipe.txt",
    resources:
        gpu=1,
    shell:
        "echo ${{SLURM_JOB_ID:-none}} > {output}"


# Consumes the first rule's output and records its own Slurm job. It requests more threads
# than the test node has, which the test profile must cap.
rule score:
    input:
        rules.prune.output,
    output:
        "scores/summary.txt",
    threads: 64
    resources:
        gpu=1,
    shell:
        "cat {input} > {output} && echo ${{SLURM_JOB_ID:-none}} >> {output}"
"""


# --- the profile itself (no cluster needed) ---


def test_slurm_profile_sends_gpu_rules_to_gpus():
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["set-resource-scopes"] == {"gpu": "local"}
    for rule in GPU_RULES:
        resources = profile["set-resources"][rule]
        assert resources["gpu"] == 1, rule
        assert resources["cpus_per_gpu"] >= 1, rule
        assert resources["cpus_per_task"] == 0, rule
    assert set(profile["default-resources"]) == {"mem_mb", "runtime", "cpus_per_task", "slurm_partition"}
    assert profile["default-resources"]["cpus_per_task"] == "threads"


# --- runs through the test cluster ---


@pytest.mark.slurm
@pytest.mark.slow
def test_two_rule_workflow_runs_through_slurm(tmp_path):
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(TWO_RULE_SNAKEFILE)

    completed = run_through_slurm(tmp_path, snakefile)
    assert completed.returncode == 0, _output_tail(completed)

    prune_job = (tmp_path / "pruning" / "recipe.txt").read_text().split()
    score_jobs = (tmp_path / "scores" / "summary.txt").read_text().split()
    assert prune_job[0].isdigit(), f"rule prune did not run inside a Slurm job: {prune_job}"
    assert score_jobs[0] == prune_job[0]
    assert score_jobs[1].isdigit(), f"rule score did not run inside a Slurm job: {score_jobs}"
    assert score_jobs[1] != prune_job[0]

    cluster = require_slurm_cluster()
    for rule, job_id in (("prune", int(prune_job[0])), ("score", int(score_jobs[1]))):
        job = _slurm_job(job_id)
        assert job["state"] == "COMPLETED", job
        assert job["comment"] == f"rule_{rule}", job
        assert job["partition"] == cluster["partition"], job


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_profile_requests_gpus_from_slurm(tmp_path):
    # Without the test override the profile requests a GPU from sbatch, which the GPU-less test node rejects.
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(TWO_RULE_SNAKEFILE)

    completed = run_through_slurm(tmp_path, snakefile, keep_gpus=True)
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0, _output_tail(completed)
    assert "--gpus=1" in output, _output_tail(completed)
    assert "--cpus-per-gpu=" in output, _output_tail(completed)
    assert "Invalid generic resource (gres) specification" in output, _output_tail(completed)
    assert not (tmp_path / "pruning" / "recipe.txt").exists()


@pytest.mark.slurm
@pytest.mark.slow
def test_memprune_workflow_runs_through_slurm(tmp_path):
    """The real workflow on a tiny config, every job submitted to the test cluster with sbatch."""
    import polars as pl

    from conftest import tiny_config, write_config

    config = tiny_config(tmp_path)
    config["strategies"] = {"global_magnitude": config["strategies"]["global_magnitude"]}
    configfile = write_config(tmp_path / "tiny.yaml", config)

    completed = run_through_slurm(tmp_path, REPO_ROOT / "Snakefile", configfile)
    assert completed.returncode == 0, _output_tail(completed)

    summary = pl.read_csv(tmp_path / "results/tables/summary.csv")
    assert set(zip(summary["strategy"], summary["sparsity"])) == {("dense", 0), ("global_magnitude", 50)}
    assert (tmp_path / "results/figures/pythia-demo/extraction_vs_sparsity.pdf").stat().st_size > 1000

    output = completed.stdout + completed.stderr
    submitted = [line for line in output.splitlines() if "Job" in line and "has been submitted with SLURM jobid" in line]
    assert len(submitted) >= 8, _output_tail(completed)
