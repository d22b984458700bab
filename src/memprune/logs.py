"""Logging set-up for workflow jobs: one log file per job, messages and progress bars included."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_job_logging(log_path: str | Path | None, level: int = logging.INFO) -> None:
    """Send this process's stderr (tqdm bars, warnings, tracebacks) and log records to `log_path`.

    Without a path, records go to the existing stderr.
    """
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        sys.stderr = open(log_path, "w", buffering=1, encoding="utf-8")
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr, force=True)
    logging.captureWarnings(True)
