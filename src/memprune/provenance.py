"""Provenance stamped on every artifact, and writers that never leave a partial file behind.

Every Parquet file carries provenance in its key-value metadata under the key `memprune`, and every
JSON artifact under a top-level `provenance` field. Provenance is the digest of the config section
that produced the artifact, the versions of the packages that shape the numbers, and the model and
tokenizer involved.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

#: Packages whose versions can change the numbers an artifact holds.
TRACKED_PACKAGES = ("memprune", "torch", "transformers", "tokenizers", "numpy", "pyarrow", "polars")

PARQUET_METADATA_KEY = b"memprune"


def config_digest(config: Any) -> str:
    """Return a SHA-256 hex digest of a JSON-serialisable config, independent of key order."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def package_versions() -> dict[str, str]:
    """Return the installed versions of the tracked packages (`missing` where not installed)."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def make_provenance(config: Any, **fields: Any) -> dict[str, Any]:
    """Build the provenance record: config digest, package versions and any named fields."""
    return {"config_digest": config_digest(config), "packages": package_versions(), **fields}


def _atomic_target(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def write_json_atomic(path: str | Path, payload: Mapping[str, Any]) -> None:
    """Write JSON to a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    handle, temporary = _atomic_target(path)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(payload, stream, indent=2, sort_keys=False, allow_nan=True)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_parquet_atomic(path: str | Path, table: pa.Table, provenance: Mapping[str, Any]) -> None:
    """Write `table` to Parquet with provenance in its key-value metadata, atomically."""
    path = Path(path)
    existing = table.schema.metadata or {}
    metadata_with_provenance = {**existing, PARQUET_METADATA_KEY: json.dumps(provenance, sort_keys=True).encode()}
    table = table.replace_schema_metadata(metadata_with_provenance)

    handle, temporary = _atomic_target(path)
    os.close(handle)
    try:
        pq.write_table(table, temporary, compression="zstd")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_csv_atomic(path: str | Path, frame) -> None:
    """Write a polars DataFrame to CSV through a temporary file renamed into place."""
    path = Path(path)
    handle, temporary = _atomic_target(path)
    os.close(handle)
    try:
        frame.write_csv(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_parquet_provenance(path: str | Path) -> dict[str, Any]:
    """Return the provenance stored in a Parquet file written by `write_parquet_atomic`."""
    schema_metadata = pq.read_schema(path).metadata or {}
    raw = schema_metadata.get(PARQUET_METADATA_KEY)
    if raw is None:
        raise ValueError(f"{path}: no memprune provenance in the Parquet key-value metadata")
    return json.loads(raw)
