"""Writing figures and their caption facts: atomic, and byte-identical from run to run.

A figure goes to `<stem>.pdf` and `<stem>.png` (200 dpi). Each file is written to a temporary name
beside its target and renamed into place, so a crash never leaves a truncated figure that a
workflow would take for finished. The PDF has no creation date, so the same figure always gives
the same bytes. The caption facts go to `<stem>.json`; `report_labels` turns them into labels for
a Snakemake report, where the figure captions read them.
"""

import contextlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from memprune.plots.style import PNG_DPI, figure_style
from memprune.provenance import write_json_atomic

logger = logging.getLogger(__name__)

#: Formats written by `save_figure`, each with its savefig arguments.
_FORMATS = {
    "pdf": {"metadata": {"CreationDate": None}},
    "png": {"dpi": PNG_DPI},
}


def _suffixed(stem: Path, suffix: str) -> Path:
    # Appending keeps dots inside model names such as "pythia-1.4b", which with_suffix would cut.
    return stem.parent / f"{stem.name}.{suffix}"


@contextlib.contextmanager
def _quiet_font_subsetting() -> Iterator[None]:
    """Hold fontTools' subsetting logger at WARNING while saving.

    The PDF backend subsets fonts with fontTools, which logs some 50 INFO lines per PDF; under a
    workflow that logs at INFO they would bury this module's own messages.
    """
    subset_logger = logging.getLogger("fontTools.subset")
    level = subset_logger.level
    subset_logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        subset_logger.setLevel(level)


def save_figure(figure: Figure, stem: str | os.PathLike) -> tuple[Path, Path]:
    """Save a figure as `<stem>.pdf` and `<stem>.png`, each written to a temporary file and renamed.

    Both files are rendered before either is renamed, so a failure while rendering leaves any
    earlier copies of both untouched.

    Args:
        figure: the figure to save.
        stem: the output path without extension; missing parent folders are created.

    Returns:
        The paths of the PDF and the PNG.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    temporary_paths: dict[str, str] = {}

    try:
        with figure_style(), _quiet_font_subsetting():
            for file_format, options in _FORMATS.items():
                handle, temporary = tempfile.mkstemp(
                    dir=stem.parent, prefix=f".{stem.name}.", suffix=f".{file_format}.tmp"
                )
                temporary_paths[file_format] = temporary
                with os.fdopen(handle, "wb") as stream:
                    figure.savefig(stream, format=file_format, **options)

        targets = []
        for file_format, temporary in temporary_paths.items():
            target = _suffixed(stem, file_format)
            os.replace(temporary, target)
            targets.append(target)
    except BaseException:
        for temporary in temporary_paths.values():
            Path(temporary).unlink(missing_ok=True)
        raise

    logger.info("saved %s", ", ".join(str(target) for target in targets))
    return targets[0], targets[1]


def _json_value(value: Any) -> Any:
    """Make a caption fact JSON-safe: non-finite floats become the strings 'inf', '-inf' or 'NaN'."""
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return "NaN"
        return "inf" if value > 0 else "-inf"
    if isinstance(value, Mapping):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    return value


def write_facts(facts: Mapping[str, Any], stem: str | os.PathLike) -> Path:
    """Write a figure's caption facts to `<stem>.json` atomically and return the path."""
    path = _suffixed(Path(stem), "json")
    write_json_atomic(path, _json_value(dict(facts)))
    return path


def _label_text(value: Any) -> str | int:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return "; ".join(f"{key}: {_label_text(item)}" for key, item in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(_label_text(item)) for item in value) or "none"
    return str(value)


def report_labels(facts: Mapping[str, Any]) -> dict[str, str | int]:
    """Turn caption facts into Snakemake report labels: strings or integers, one per fact.

    Lists are joined with commas, mappings with semicolons, floats keep four significant digits and
    None reads "n/a". The captions under workflow/report look facts up by these keys.
    """
    return {key: _label_text(value) for key, value in facts.items()}


def load_report_labels(facts_path: str | os.PathLike) -> dict[str, str | int]:
    """Read a facts file written by `write_facts` and return its report labels."""
    with open(facts_path, encoding="utf-8") as stream:
        return report_labels(json.load(stream))
