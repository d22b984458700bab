"""Tests of device leases (real flocks in tmp_path, contended by real processes) and of the
out-of-memory batch back-off."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from memprune.batching import call_with_oom_backoff, run_with_oom_backoff
from memprune.devices import (
    DEFAULT_LOCK_DIR,
    LOCK_DIR_ENV,
    DeviceLeaseTimeout,
    acquire_slot,
    describe_device,
    filesystem_type,
    lease_device,
    lock_file_name,
    resolve_lock_dir,
)

SPAWN = multiprocessing.get_context("spawn")


# --- helpers run in spawned processes (module level, so spawn can import them) ---


def _hold_lease_and_record(lock_dir: str, record_path: str, barrier, hold_s: float) -> None:
    """Wait for all contenders, lease one of two pretend devices, hold it and record the interval."""
    barrier.wait()
    with lease_device(lock_dir=lock_dir, n_devices=2, timeout_s=30) as device:
        start = time.time()
        time.sleep(hold_s)
        end = time.time()
    record = {"device": device.index, "start": start, "end": end, "pid": os.getpid()}
    Path(record_path).write_text(json.dumps(record))


def _hold_lease_forever(lock_dir: str, leased) -> None:
    """Lease the only pretend device, signal that it is held, and sleep until killed."""
    with lease_device(lock_dir=lock_dir, n_devices=1, timeout_s=30):
        leased.set()
        time.sleep(600)


# --- leases ---


def test_lease_device_contention_never_overlaps(tmp_path):
    lock_dir = tmp_path / "locks"
    contenders = 4
    hold_s = 0.4
    barrier = SPAWN.Barrier(contenders)
    records = [tmp_path / f"record-{index}.json" for index in range(contenders)]

    processes = [
        SPAWN.Process(target=_hold_lease_and_record, args=(str(lock_dir), str(record), barrier, hold_s))
        for record in records
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0] * contenders

    intervals = [json.loads(record.read_text()) for record in records]
    assert {interval["device"] for interval in intervals} == {0, 1}
    for device in (0, 1):
        on_device = sorted((interval for interval in intervals if interval["device"] == device), key=lambda i: i["start"])
        for earlier, later in zip(on_device, on_device[1:]):
            assert earlier["end"] <= later["start"], f"two leases overlap on device {device}: {earlier} {later}"

    # Four contenders on two devices: the last lease started only after some other lease ended.
    last_start = max(interval["start"] for interval in intervals)
    first_end = min(interval["end"] for interval in intervals)
    assert last_start >= first_end
    assert sorted(path.name for path in lock_dir.iterdir()) == ["pretend-0.lock", "pretend-1.lock"]


def test_lease_device_freed_on_sigkill(tmp_path):
    lock_dir = tmp_path / "locks"
    leased = SPAWN.Event()
    holder = SPAWN.Process(target=_hold_lease_forever, args=(str(lock_dir), leased))
    holder.start()
    try:
        assert leased.wait(timeout=60), "the holder process never leased the device"
        with pytest.raises(DeviceLeaseTimeout, match="pid="):
            with lease_device(lock_dir=lock_dir, n_devices=1, timeout_s=0.2):
                pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(timeout=30)
    assert holder.exitcode == -signal.SIGKILL

    started = time.monotonic()
    with lease_device(lock_dir=lock_dir, n_devices=1, timeout_s=5) as device:
        assert device == torch.device("cuda", 0)
    assert time.monotonic() - started < 1.0


def test_lease_device_waits_for_release(tmp_path):
    lock_dir = tmp_path / "locks"
    held = [acquire_slot(lock_dir, ["pretend-0", "pretend-1"]) for _ in range(2)]
    assert [lease.slot for lease in held] == [0, 1]

    outcome = {}

    def wait_for_device():
        with lease_device(lock_dir=lock_dir, n_devices=2, timeout_s=20) as device:
            outcome["device"] = device
            outcome["leased_at"] = time.monotonic()

    waiter = threading.Thread(target=wait_for_device)
    waiter.start()
    time.sleep(0.5)
    assert "device" not in outcome, "the waiter leased a device while both were held"

    released_at = time.monotonic()
    held[1].release()
    waiter.join(timeout=30)
    held[0].release()

    assert outcome["device"] == torch.device("cuda", 1)
    assert outcome["leased_at"] >= released_at


def test_acquire_slot_timeout_names_holders(tmp_path):
    with acquire_slot(tmp_path, ["only"]) as lease:
        assert lease.is_held
        assert f"pid={os.getpid()}" in lease.lock_path.read_text()
        with pytest.raises(DeviceLeaseTimeout, match=r"timed out .* among 1 .*only\.lock: pid="):
            acquire_slot(tmp_path, ["only"], timeout_s=0.1)
    assert not lease.is_held
    assert lease.lock_path.read_text() == ""


def test_acquire_slot_rejects_bad_names(tmp_path):
    with pytest.raises(ValueError, match="at least one slot"):
        acquire_slot(tmp_path, [])
    with pytest.raises(ValueError, match="distinct"):
        acquire_slot(tmp_path, ["a", "a"])
    with pytest.raises(ValueError, match="n_devices must be a positive integer"):
        with lease_device(lock_dir=tmp_path, n_devices=0):
            pass


def test_lock_file_name_replaces_unsafe_characters():
    assert lock_file_name("GPU-5f3c2a10-1b2c-4d5e-8f90-0a1b2c3d4e5f") == "GPU-5f3c2a10-1b2c-4d5e-8f90-0a1b2c3d4e5f.lock"
    assert lock_file_name("cuda-visible-MIG/1 2") == "cuda-visible-MIG_1_2.lock"


def test_resolve_lock_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv(LOCK_DIR_ENV, raising=False)
    assert resolve_lock_dir() == DEFAULT_LOCK_DIR
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "from-env"))
    assert resolve_lock_dir() == tmp_path / "from-env"
    assert resolve_lock_dir(tmp_path / "argument") == tmp_path / "argument"


def test_filesystem_type_of_tmp_path(tmp_path):
    fs_type = filesystem_type(tmp_path)
    assert fs_type is not None
    assert fs_type not in {"nfs", "nfs4"}


def test_lease_device_without_cuda_yields_cpu(tmp_path):
    # An empty CUDA_VISIBLE_DEVICES hides every GPU, so this runs the real no-CUDA path on any machine.
    lock_dir = tmp_path / "locks"
    script = (
        "from memprune.devices import lease_device\n"
        f"with lease_device(lock_dir={str(lock_dir)!r}) as device:\n"
        "    print(device)\n"
    )
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    completed = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "cpu"
    assert not lock_dir.exists()


def test_describe_device_cpu():
    description = describe_device("cpu")
    assert description["type"] == "cpu"
    assert description["torch_version"] == torch.__version__
    assert description["cpu_count"] == os.cpu_count()
    assert description["total_memory_bytes"] > 0
    json.dumps(description)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised on a machine without CUDA")
def test_describe_device_cuda_without_cuda_raises():
    with pytest.raises(ValueError, match="CUDA is not available"):
        describe_device("cuda:0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_lease_device_real_gpu_locks_uuid(tmp_path):
    with lease_device(lock_dir=tmp_path) as device:
        assert device.type == "cuda"
        assert torch.cuda.current_device() == device.index
        description = describe_device(device)
        lock_files = [path.name for path in tmp_path.iterdir()]
    assert description["total_memory_bytes"] > 0
    assert description["uuid"]
    assert any(description["uuid"] in name for name in lock_files)


# --- out-of-memory back-off ---


def _square_plus_one_fitting_four(calls):
    """Return a batch function that fails like a full GPU on batches of more than four items."""

    def square_plus_one(batch):
        calls.append(len(batch))
        if len(batch) > 4:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate a batch of {len(batch)}")
        return [value * value + 1 for value in batch]

    return square_plus_one


def test_oom_backoff_settles_at_four():
    items = list(range(37))
    calls = []

    backed_off = run_with_oom_backoff(_square_plus_one_fitting_four(calls), items, batch_size=16)
    one_by_one = run_with_oom_backoff(_square_plus_one_fitting_four([]), items, batch_size=1)

    assert backed_off.batch_size == 4
    assert backed_off.out_of_memory_count == 2
    assert calls[:3] == [16, 8, 4]
    assert calls[3:] == [4] * 8 + [1]
    assert backed_off.results == one_by_one.results == [value * value + 1 for value in items]
    assert one_by_one.out_of_memory_count == 0


def test_oom_backoff_reraises_at_minimum():
    calls = []

    def always_out_of_memory(batch):
        calls.append(len(batch))
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        run_with_oom_backoff(always_out_of_memory, list(range(10)), batch_size=8, min_batch_size=2)
    assert calls == [8, 4, 2]


def test_oom_backoff_rejects_bad_input():
    with pytest.raises(ValueError, match="returned 1 results for a batch of 3"):
        run_with_oom_backoff(lambda batch: [sum(batch)], [1, 2, 3], batch_size=3)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        run_with_oom_backoff(list, [1], batch_size=0)
    with pytest.raises(ValueError, match=r"min_batch_size \(4\) must not exceed batch_size \(2\)"):
        run_with_oom_backoff(list, [1], batch_size=2, min_batch_size=4)


def test_oom_backoff_empty_items():
    result = run_with_oom_backoff(lambda batch: pytest.fail("fn called on no items"), [], batch_size=8)
    assert result.results == []
    assert result.batch_size == 8


def test_call_backoff_halves_until_fit():
    sizes = []

    def score_all(batch_size):
        sizes.append(batch_size)
        if batch_size > 4:
            raise torch.OutOfMemoryError(f"batch of {batch_size} does not fit")
        return sum(range(10))

    assert call_with_oom_backoff(score_all, 16, "scoring") == 45
    assert sizes == [16, 8, 4]


def test_call_backoff_reraises_at_one():
    def never_fits(batch_size):
        raise torch.OutOfMemoryError("no memory at all")

    with pytest.raises(torch.OutOfMemoryError):
        call_with_oom_backoff(never_fits, 4, "scoring")
