"""The GPU check script in its CPU dry-run mode, as CI runs it."""

import json
import subprocess

from conftest import REPO


def test_gpu_check_dry_run_prints_every_measurement():
    result = subprocess.run(
        ["bash", str(REPO / "benchmarks/gpu_check.sh"), "--dry-run"], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]

    records = {record["name"]: record for record in map(json.loads, result.stdout.splitlines())}
    assert records["device"]["device"]["type"] == "cpu"
    assert records["tiny/global_threshold"]["pruned"] == records["tiny/global_threshold"]["numel"] // 2
    assert records["tiny/scorer_k8"]["rows"] == 4
    assert records["tiny/scorer_k16"]["tokens_per_second"] > 0
    assert records["leases/two_jobs_one_gpu"]["took_turns"] is True
    assert records["leases/two_jobs_one_gpu"]["overlap_seconds"] == 0.0
