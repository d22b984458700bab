"""Exclusive leases on GPUs, so concurrent jobs on one machine never share a device.

Snakemake counts the `gpu` resource (`--resources gpu=2`) but never tells a job which GPU to
use, so two jobs started together would both land on GPU 0. A job therefore wraps its model work
in `lease_device()`, which takes an exclusive `fcntl.flock` on one lock file per visible device
and releases it on exit. The kernel drops a flock when the process that holds it dies, so a
crash or SIGKILL frees the device without any clean-up.

The lock directory must be one directory shared by every job on the machine, and on a local
filesystem (`/tmp` or another local disk). A per-job private `/tmp` hides the other jobs' locks,
and a network filesystem (NFS and the like) may keep or drop locks when a client fails, so in
both cases two jobs can end up on the same GPU. The default is `$MEMPRUNE_LOCK_DIR` or
`/tmp/memprune-device-locks`.

Lock files are named after the physical device (its UUID where torch reports one), so two jobs
that see the GPUs in different `CUDA_VISIBLE_DEVICES` orders still lock the same file for the
same GPU. Under Slurm the scheduler restricts the visible devices, so the lease finds the one
GPU the job was given. Without CUDA, `lease_device()` yields the CPU.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import platform
import re
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

#: Environment variable that overrides the default lock directory.
LOCK_DIR_ENV = "MEMPRUNE_LOCK_DIR"

#: Lock directory used when neither an argument nor `$MEMPRUNE_LOCK_DIR` names one.
DEFAULT_LOCK_DIR = Path("/tmp/memprune-device-locks")

#: Filesystem types on which flock is not reliable across machines or after a client crash.
NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "lustre", "gpfs", "beegfs", "ceph", "fuse.sshfs"})

#: Seconds between two "still waiting" log lines while every device is leased.
WAIT_LOG_INTERVAL_S = 60.0


class DeviceLeaseTimeout(TimeoutError):
    """Raised when no device became free within the requested timeout."""


@dataclass
class DeviceLease:
    """An exclusive flock on the lock file of one slot (device). Release it to free the slot.

    Attributes:
        slot: Index of the leased slot among the requested slot names, which for a real GPU is
            its index among the visible devices.
        slot_name: The slot's name, which is also the stem of its lock file.
        lock_path: The lock file held.

    NOTE: A child process forked while the lease is held inherits the locked descriptor, so the
    device stays leased until that child exits as well. Children started with exec do not.
    """

    slot: int
    slot_name: str
    lock_path: Path
    _fd: int | None = field(default=None, repr=False)
    _writable: bool = field(default=False, repr=False)

    @property
    def is_held(self) -> bool:
        """Whether the lease still holds its lock."""
        return self._fd is not None

    def release(self) -> None:
        """Release the lock. Calling it again does nothing."""
        if self._fd is None:
            return
        if self._writable:
            # Clear the holder note first, so no one reads a finished job as the holder.
            os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        logger.info("released device slot %d (%s)", self.slot, self.slot_name)

    def __enter__(self) -> DeviceLease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def resolve_lock_dir(lock_dir: str | Path | None = None) -> Path:
    """Return the lock directory: `lock_dir`, else `$MEMPRUNE_LOCK_DIR`, else the default."""
    if lock_dir is not None:
        return Path(lock_dir)
    from_env = os.environ.get(LOCK_DIR_ENV)
    if from_env:
        return Path(from_env)
    return DEFAULT_LOCK_DIR


def filesystem_type(path: str | Path) -> str | None:
    """Return the type of the filesystem that contains `path` (e.g. `ext4`, `nfs4`), read from
    `/proc/self/mounts`, or None where that file does not exist (outside Linux)."""
    mounts_file = Path("/proc/self/mounts")
    if not mounts_file.exists():
        return None

    resolved = Path(path).resolve()
    best_mount, best_type = "", None
    for line in mounts_file.read_text().splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = resolved == Path(mount_point) or Path(mount_point) in resolved.parents
        if inside and len(mount_point) > len(best_mount):
            best_mount, best_type = mount_point, fields[2]
    return best_type


def lock_file_name(slot_name: str) -> str:
    """Return the lock file name for a slot, with characters outside `[A-Za-z0-9._-]` replaced."""
    if not slot_name:
        raise ValueError("a device slot name must not be empty")
    return re.sub(r"[^A-Za-z0-9._-]", "_", slot_name) + ".lock"


def _prepare_lock_dir(lock_dir: Path) -> None:
    """Create the lock directory, world-writable with the sticky bit as /tmp is, so jobs of
    different users share it, and warn when it sits on a network filesystem."""
    if not lock_dir.exists():
        lock_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):
            lock_dir.chmod(0o1777)
    if not lock_dir.is_dir():
        raise NotADirectoryError(f"device lock directory {lock_dir} exists but is not a directory")

    fs_type = filesystem_type(lock_dir)
    if fs_type in NETWORK_FILESYSTEMS:
        logger.warning(
            "device lock directory %s is on a %s filesystem, where flock may not be exclusive or may "
            "survive a crash. Set %s to a local directory such as /tmp/memprune-device-locks",
            lock_dir,
            fs_type,
            LOCK_DIR_ENV,
        )


def _open_lock_file(lock_path: Path) -> tuple[int, bool]:
    """Open (creating if needed) a lock file; return the descriptor and whether it is writable.

    flock needs no write access, so a lock file created by another user can still be locked
    read-only. Only the holder note is skipped then.
    """
    flags = os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(lock_path, os.O_RDWR | os.O_CREAT | flags, 0o666), True
    except PermissionError:
        return os.open(lock_path, os.O_RDONLY | flags), False


def _holder_note() -> str:
    """Describe this process for the lock file, so waiting jobs can log who holds a device."""
    command = " ".join(sys.argv)[:200]
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    slurm_job = os.environ.get("SLURM_JOB_ID")
    job = f" slurm_job={slurm_job}" if slurm_job else ""
    return f"pid={os.getpid()} host={socket.gethostname()}{job} since={started} command={command}\n"


def _read_holder(lock_path: Path) -> str:
    try:
        return lock_path.read_text(errors="replace").strip() or "unknown holder"
    except OSError:
        return "unknown holder"


def _try_lock(lock_path: Path) -> tuple[int, bool] | None:
    """Take the lock without blocking; return the open descriptor and whether it is writable,
    or None if another process holds the lock."""
    fd, writable = _open_lock_file(lock_path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise

    if writable:
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder_note().encode(), 0)
    return fd, writable


def acquire_slot(
    lock_dir: str | Path,
    slot_names: Sequence[str],
    timeout_s: float | None = None,
    poll_s: float = 0.05,
    max_poll_s: float = 2.0,
) -> DeviceLease:
    """Lease the first free slot of `slot_names`, waiting for one to be released if all are held.

    Each slot is a lock file `<lock_dir>/<slot name>.lock` that is locked with an exclusive flock.
    Lock files are never deleted: unlinking a file that another process holds open would let a
    third process lock a new file of the same name, so two holders would share the slot.

    Args:
        lock_dir: Directory of the lock files, shared by all jobs on the machine (see the module
            docstring); created if missing.
        slot_names: One name per slot, in the order they are tried; names must be distinct.
        timeout_s: Seconds to wait for a free slot before raising `DeviceLeaseTimeout`; None
            waits forever.
        poll_s: First pause between two rounds of attempts, in seconds; it doubles each round.
        max_poll_s: Maximum pause between two rounds, in seconds.

    Returns:
        The lease; release it with `release()` or by using it as a context manager.
    """
    if not slot_names:
        raise ValueError("acquire_slot needs at least one slot name, got an empty list")
    if len(set(slot_names)) != len(slot_names):
        raise ValueError(f"slot names must be distinct, got {list(slot_names)}")
    if timeout_s is not None and timeout_s < 0:
        raise ValueError(f"timeout_s must be None or >= 0 seconds, got {timeout_s}")
    if poll_s <= 0 or max_poll_s < poll_s:
        raise ValueError(f"need 0 < poll_s <= max_poll_s, got poll_s={poll_s}, max_poll_s={max_poll_s}")

    lock_dir = Path(lock_dir)
    _prepare_lock_dir(lock_dir)
    lock_paths = [lock_dir / lock_file_name(name) for name in slot_names]

    started = time.monotonic()
    pause_s = poll_s
    last_wait_log = None
    while True:
        for slot, (name, lock_path) in enumerate(zip(slot_names, lock_paths)):
            locked = _try_lock(lock_path)
            if locked is not None:
                fd, writable = locked
                waited_s = time.monotonic() - started
                logger.info("leased device slot %d (%s) after %.1f s, lock %s", slot, name, waited_s, lock_path)
                return DeviceLease(slot=slot, slot_name=name, lock_path=lock_path, _fd=fd, _writable=writable)

        waited_s = time.monotonic() - started
        if timeout_s is not None and waited_s >= timeout_s:
            holders = "; ".join(f"{path.name}: {_read_holder(path)}" for path in lock_paths)
            raise DeviceLeaseTimeout(
                f"timed out after {waited_s:.1f} s (timeout_s={timeout_s}) waiting for a free device "
                f"among {len(slot_names)} in {lock_dir}. Holders: {holders}"
            )

        if last_wait_log is None or time.monotonic() - last_wait_log >= WAIT_LOG_INTERVAL_S:
            for path in lock_paths:
                logger.info("waiting for device lock %s, held by %s", path, _read_holder(path))
            last_wait_log = time.monotonic()

        sleep_s = pause_s
        if timeout_s is not None:
            sleep_s = max(0.0, min(sleep_s, timeout_s - waited_s))
        time.sleep(sleep_s)
        pause_s = min(pause_s * 2, max_poll_s)


def visible_device_names() -> list[str]:
    """Return one lock slot name per visible CUDA device that identifies the physical GPU.

    The name is the device UUID where torch reports it, else the device's entry in
    `CUDA_VISIBLE_DEVICES` (a physical index or UUID), else its index when that variable is unset.
    """
    visible_entries = [entry.strip() for entry in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if entry.strip()]

    names = []
    for index in range(torch.cuda.device_count()):
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
        if uuid:
            uuid_text = str(uuid)
            names.append(uuid_text if uuid_text.startswith(("GPU-", "MIG-")) else f"GPU-{uuid_text}")
        elif index < len(visible_entries):
            names.append(f"cuda-visible-{visible_entries[index]}")
        else:
            names.append(f"cuda-{index}")
    return names


@contextlib.contextmanager
def lease_device(
    lock_dir: str | Path | None = None,
    n_devices: int | None = None,
    timeout_s: float | None = None,
) -> Iterator[torch.device]:
    """Lease one free GPU for the duration of the `with` block and yield it as a `torch.device`.

    With CUDA available, the yielded device is `cuda:<i>`, `i` being the index among the visible
    devices, and it is also made the current CUDA device. Without CUDA it yields `cpu` and takes
    no lock.

    Args:
        lock_dir: Directory of the lock files; default `$MEMPRUNE_LOCK_DIR` or
            `/tmp/memprune-device-locks`. It must be local and shared by all jobs on the machine.
        n_devices: Pretend this many devices exist instead of asking CUDA, for tests: the slots are
            named `pretend-<i>`, the lease works as for real GPUs, and the yielded `cuda:<i>` is
            never touched, so this also runs without CUDA.
        timeout_s: Seconds to wait for a free device before raising `DeviceLeaseTimeout`; None
            waits forever.
    """
    if n_devices is not None:
        if isinstance(n_devices, bool) or not isinstance(n_devices, int) or n_devices < 1:
            raise ValueError(f"n_devices must be a positive integer or None, got {n_devices!r}")
        slot_names = [f"pretend-{index}" for index in range(n_devices)]
    elif torch.cuda.is_available():
        slot_names = visible_device_names()
    else:
        logger.info("CUDA is not available; running on the CPU without a device lease")
        yield torch.device("cpu")
        return

    with acquire_slot(resolve_lock_dir(lock_dir), slot_names, timeout_s=timeout_s) as lease:
        device = torch.device("cuda", lease.slot)
        if n_devices is None:
            torch.cuda.set_device(device)
            logger.info("running on %s (%s)", device, torch.cuda.get_device_name(device))
        yield device


def describe_device(device: torch.device | str) -> dict[str, Any]:
    """Describe a device for logs and provenance: name, memory, compute capability and versions.

    Args:
        device: A CUDA device (its index defaults to the current device) or the CPU.

    Returns:
        A JSON-serialisable dict, with memory in bytes.
    """
    device = torch.device(device)
    description: dict[str, Any] = {"type": device.type, "torch_version": torch.__version__}

    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"cannot describe {device}: CUDA is not available on this machine")
        index = device.index if device.index is not None else torch.cuda.current_device()
        if not 0 <= index < torch.cuda.device_count():
            raise ValueError(f"cannot describe {device}: valid CUDA indices are 0..{torch.cuda.device_count() - 1}")
        properties = torch.cuda.get_device_properties(index)
        uuid = getattr(properties, "uuid", None)
        description.update(
            index=index,
            name=properties.name,
            total_memory_bytes=int(properties.total_memory),
            capability=f"{properties.major}.{properties.minor}",
            multiprocessor_count=int(properties.multi_processor_count),
            uuid=str(uuid) if uuid else None,
            cuda_version=torch.version.cuda,
            cudnn_version=torch.backends.cudnn.version(),
        )
        return description

    if device.type == "cpu":
        page_size = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else None
        page_count = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
        description.update(
            name=platform.processor() or platform.machine(),
            total_memory_bytes=page_size * page_count if page_size and page_count else None,
            cpu_count=os.cpu_count(),
            torch_threads=torch.get_num_threads(),
            cuda_version=torch.version.cuda,
        )
        return description

    raise ValueError(f"cannot describe device type {device.type!r}: supported types are 'cuda' and 'cpu'")
