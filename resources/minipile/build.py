"""Build the embedded mini-Pile demo corpus in The Pile's ``*.jsonl.zst`` shard format.

The corpus holds only text that may be redistributed and that this machine already has:

- ``Github``: source files of CPython's standard library (PSF License Agreement).
- ``StackExchange``: the docstrings of other standard-library modules, one paragraph each (PSF).
- ``Pile-CC``: the reference documentation topics that CPython ships in ``pydoc_data/topics.py`` (PSF).
- ``FreeLaw``: the licence texts in Debian's ``/usr/share/common-licenses`` and CPython's ``LICENSE.txt``.

Documents are held out at the family level (a standard-library package, a licence family, a
documentation topic): a family's documents all go to ``train`` or all to ``val``. A ``val`` document
that shares any 200-character window with a ``train`` document is then dropped, so that every
``val`` document is a true non-member for a model trained on ``train``.

The output is deterministic: sorted inputs, SHA-256 keyed ordering, a seeded shuffle, a fixed zstd
level and no timestamps, so two runs on the same machine write the same bytes.

Usage::

    .venv/bin/python resources/minipile/build.py --out resources/minipile

It writes ``train.jsonl.zst``, ``val.jsonl.zst`` and ``NOTICE`` (every source path with its licence).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import logging
import random
import sys
import sysconfig
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import zstandard
from tqdm import tqdm

logger = logging.getLogger(__name__)

SEED = 2502
ZSTD_LEVEL = 19
MIN_DOC_CHARS = 200
MAX_DOC_BYTES = 60_000
OVERLAP_WINDOW_CHARS = 200
VAL_FRACTION = 0.10

# UTF-8 bytes of text taken from the standard library, train and val together, per pile_set_name.
BUDGET_BYTES = {"Github": 2_300_000, "StackExchange": 1_200_000}

# Share of standard-library families whose docstrings (not their source) are used.
DOCSTRING_FAMILY_PERCENT = 65

DEFAULT_LICENSES_DIR = Path("/usr/share/common-licenses")
EXCLUDED_DIRS = {"test", "tests", "idle_test", "__pycache__", "site-packages", "pydoc_data", "encodings"}
SPLITS = ("train", "val")


class CorpusBuildError(ValueError):
    """Raised when an input of the corpus build is missing or malformed."""


@dataclass(frozen=True)
class Document:
    """One corpus document before it is written as a Pile record.

    Args:
        text: The document text, with ``\\n`` line endings.
        pile_set_name: The Pile subset that this kind of text represents.
        family: Key of the group of related documents that share one split.
        path: The source file the text comes from.
        part: Where in the file: a part number, a topic name, or empty for the whole file.
    """

    text: str
    pile_set_name: str
    family: str
    path: Path
    part: str = ""


def stable_hash(*keys: str) -> int:
    """Return a 64-bit integer from SHA-256 of the keys, the same on every run and machine."""
    digest = hashlib.sha256("\x1f".join(keys).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def utf8_len(text: str) -> int:
    """Return the length of the text in UTF-8 bytes."""
    return len(text.encode("utf-8"))


def read_text_file(path: Path, skipped: Counter) -> str | None:
    """Read a UTF-8 text file with ``\\n`` line endings, or return None for binary or undecodable files.

    Args:
        path: The file to read.
        skipped: Counter of skipped inputs by reason; updated when the file is skipped.
    """
    data = path.read_bytes()
    if b"\x00" in data:
        logger.warning("Skipping binary file (NUL byte): %s", path)
        skipped["binary file"] += 1
        return None

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        logger.warning("Skipping file that is not UTF-8: %s (%s)", path, error)
        skipped["undecodable file"] += 1
        return None

    return text.replace("\r\n", "\n").replace("\r", "\n")


def split_long_text(text: str, max_bytes: int = MAX_DOC_BYTES) -> list[str]:
    """Split a text on blank lines into parts of at most ``max_bytes`` UTF-8 bytes.

    Paragraphs are packed greedily in order. A paragraph that is itself too long is split on
    lines, and a single over-long line on characters, so no part exceeds the limit.

    Args:
        text: The text to split.
        max_bytes: The largest part, in UTF-8 bytes.
    """
    if utf8_len(text) <= max_bytes:
        return [text]

    pieces = []
    for paragraph in text.split("\n\n"):
        if utf8_len(paragraph) <= max_bytes:
            pieces.append((paragraph, "\n\n"))
            continue
        for line in paragraph.split("\n"):
            while utf8_len(line) > max_bytes:
                cut = max_bytes // 4
                pieces.append((line[:cut], ""))
                line = line[cut:]
            pieces.append((line, "\n"))

    parts = []
    current = ""
    for piece, separator in pieces:
        candidate = current + piece + separator
        if current and utf8_len(candidate.rstrip("\n")) > max_bytes:
            parts.append(current.rstrip("\n"))
            candidate = piece + separator
        current = candidate
    parts.append(current.rstrip("\n"))

    return [part for part in parts if part]


def make_documents(text: str, pile_set_name: str, family: str, path: Path, part: str, skipped: Counter) -> list[Document]:
    """Turn one source text into documents: split if too long, drop parts that are too short.

    Args:
        text: The source text.
        pile_set_name: The Pile subset of the documents.
        family: The split family of the documents.
        path: The source file.
        part: A label within the file (a topic name), or empty.
        skipped: Counter of dropped texts by reason; updated for parts that are too short.
    """
    pieces = split_long_text(text)
    documents = []
    for index, piece in enumerate(pieces, start=1):
        if len(piece.strip()) < MIN_DOC_CHARS:
            skipped[f"{pile_set_name}: text under {MIN_DOC_CHARS} characters"] += 1
            continue
        label = part
        if len(pieces) > 1:
            label = f"{part} part {index}/{len(pieces)}".strip()
        documents.append(Document(piece, pile_set_name, family, path, label))

    return documents


def stdlib_family(relative: Path) -> str:
    """Return the split family of a standard-library file: its top-level package or module name."""
    return "stdlib:" + relative.parts[0].removesuffix(".py")


def is_stdlib_source(relative: Path) -> bool:
    """Return whether a standard-library ``.py`` file is hand-written library source worth using.

    Tests, generated files (codec tables, build-time sysconfig data, the pydoc topics used
    elsewhere) and third-party packages are left out.
    """
    if any(part in EXCLUDED_DIRS or part.startswith("config-") for part in relative.parts[:-1]):
        return False
    return not relative.name.startswith(("test_", "_sysconfigdata"))


def list_stdlib_sources(stdlib: Path) -> list[Path]:
    """Return the usable standard-library source files, as sorted paths relative to ``stdlib``."""
    sources = [path.relative_to(stdlib) for path in stdlib.rglob("*.py") if not path.is_symlink()]
    return sorted(relative for relative in sources if is_stdlib_source(relative))


def iter_docstrings(node: ast.AST):
    """Yield the docstrings of a module and of every class and function in it, in source order."""
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        docstring = ast.get_docstring(node, clean=True)
        if docstring and docstring.strip():
            yield docstring.strip()
    for child in ast.iter_child_nodes(node):
        yield from iter_docstrings(child)


def docstring_text(source: str, path: Path, skipped: Counter) -> str | None:
    """Return the docstrings of a Python source as blank-line-separated paragraphs, or None if it does not parse."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename=str(path))
    except SyntaxError as error:
        logger.warning("Skipping file that does not parse: %s (%s)", path, error)
        skipped["syntax error"] += 1
        return None

    return "\n\n".join(iter_docstrings(tree))


def collect_stdlib_documents(stdlib: Path, skipped: Counter) -> list[Document]:
    """Collect ``Github`` (source) and ``StackExchange`` (docstring) documents from the standard library.

    Each family is used either for its source or for its docstrings, never both, so the two
    domains share no text. Files are taken in SHA-256 order of their path, which mixes packages,
    until each domain reaches its byte budget.

    Args:
        stdlib: The standard-library directory.
        skipped: Counter of skipped inputs by reason.
    """
    documents = []
    used_bytes = Counter()
    for relative in tqdm(sorted(list_stdlib_sources(stdlib), key=lambda r: (stable_hash("order", r.as_posix()), r)),
                         desc="stdlib files", unit="file"):
        path = stdlib / relative
        source = read_text_file(path, skipped)
        if source is None:
            continue

        family = stdlib_family(relative)
        docstring_role = stable_hash("role", family) % 100 < DOCSTRING_FAMILY_PERCENT
        pile_set_name = "StackExchange" if docstring_role else "Github"
        if used_bytes[pile_set_name] >= BUDGET_BYTES[pile_set_name]:
            skipped[f"{pile_set_name}: file over budget"] += 1
            continue

        text = docstring_text(source, path, skipped) if docstring_role else source
        if text is None:
            continue
        new = make_documents(text, pile_set_name, family, path, "", skipped)
        used_bytes[pile_set_name] += sum(utf8_len(document.text) for document in new)
        documents.extend(new)

    for pile_set_name, budget in BUDGET_BYTES.items():
        if used_bytes[pile_set_name] < budget:
            logger.warning("%s reached only %d of its %d-byte budget", pile_set_name, used_bytes[pile_set_name], budget)

    return documents


def load_pydoc_topics(path: Path) -> dict[str, str]:
    """Read the ``topics`` dict literal of ``pydoc_data/topics.py`` without importing it."""
    source = read_text_file(path, Counter())
    if source is None:
        raise CorpusBuildError(f"{path}: not a UTF-8 text file; expected CPython's pydoc_data/topics.py")

    for statement in ast.parse(source, filename=str(path)).body:
        if isinstance(statement, ast.Assign) and [getattr(target, "id", None) for target in statement.targets] == ["topics"]:
            topics = ast.literal_eval(statement.value)
            if isinstance(topics, dict) and all(isinstance(value, str) for value in topics.values()):
                return topics

    raise CorpusBuildError(f"{path}: found no assignment 'topics = {{name: text, ...}}'")


def collect_topic_documents(stdlib: Path, skipped: Counter) -> list[Document]:
    """Collect ``Pile-CC`` documents: one per reference documentation topic, each its own family."""
    path = stdlib / "pydoc_data" / "topics.py"
    documents = []
    for name, text in sorted(load_pydoc_topics(path).items()):
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        documents.extend(make_documents(text, "Pile-CC", f"topic:{name}", path, name, skipped))

    return documents


def license_family(name: str) -> str:
    """Return the split family of a licence file: all GNU licences together, else the name before the version."""
    if name.startswith(("GPL", "LGPL", "GFDL")):
        return "license:GNU"
    return "license:" + name.split("-")[0]


def collect_license_documents(licenses_dir: Path, stdlib: Path, skipped: Counter) -> list[Document]:
    """Collect ``FreeLaw`` documents: Debian's common licences (symlinked aliases once) and CPython's licence."""
    paths = []
    seen = set()
    real_files_first = sorted(licenses_dir.iterdir(), key=lambda path: (path.is_symlink(), path.name))
    for path in real_files_first:
        resolved = path.resolve()
        if not path.is_file() or resolved in seen:
            logger.info("Skipping licence alias or non-file: %s", path)
            skipped["licence alias or non-file"] += 1
            continue
        seen.add(resolved)
        paths.append((path, license_family(path.name)))
    paths.append((stdlib / "LICENSE.txt", "license:PSF"))

    documents = []
    for path, family in paths:
        text = read_text_file(path, skipped)
        if text is not None:
            documents.extend(make_documents(text, "FreeLaw", family, path, "", skipped))

    return documents


def assign_splits(documents: list[Document], val_fraction: float = VAL_FRACTION) -> dict[str, str]:
    """Assign every family to ``train`` or ``val``, holding out about ``val_fraction`` of each domain's documents.

    Within each pile_set_name, families are visited in SHA-256 order of their key and moved to
    ``val`` until the target count is met. A family that would overshoot the target by more than
    half of it stays in ``train``.

    Args:
        documents: All documents; a family must not span two pile_set_names.
        val_fraction: Target share of each domain's documents in ``val``.

    Returns:
        The split of each family.
    """
    family_domain = {}
    family_size = Counter()
    for document in documents:
        domain = family_domain.setdefault(document.family, document.pile_set_name)
        if domain != document.pile_set_name:
            raise CorpusBuildError(f"family {document.family!r} spans {domain!r} and {document.pile_set_name!r}. "
                                   "A family must stay within one pile_set_name.")
        family_size[document.family] += 1

    splits = {}
    for domain in sorted(set(family_domain.values())):
        families = sorted((family for family, owner in family_domain.items() if owner == domain),
                          key=lambda family: (stable_hash("split", family), family))
        total = sum(family_size[family] for family in families)
        target = max(1, round(val_fraction * total))
        tolerance = max(1, target // 2)
        val_count = 0
        for family in families:
            if val_count < target and val_count + family_size[family] <= target + tolerance:
                splits[family] = "val"
                val_count += family_size[family]
            else:
                splits[family] = "train"

    return splits


def find_overlapping(held_out: list[str], reference: list[str], window: int = OVERLAP_WINDOW_CHARS) -> set[int]:
    """Return the indices of held-out texts that share any ``window``-character substring with a reference text.

    Every window position is compared, which covers every line-aligned chunk. Windows are matched
    by hash and then confirmed by string equality, so the result is exact.

    Args:
        held_out: Texts to check (the val documents).
        reference: Texts they must not overlap (the train documents).
        window: Window length in characters.
    """
    held_out_hashes = set()
    for text in held_out:
        held_out_hashes.update(hash(text[start:start + window]) for start in range(len(text) - window + 1))

    shared = defaultdict(set)
    for text in tqdm(reference, desc="overlap scan", unit="doc"):
        for start in range(len(text) - window + 1):
            chunk = text[start:start + window]
            if hash(chunk) in held_out_hashes:
                shared[hash(chunk)].add(chunk)

    overlapping = set()
    for index, text in enumerate(held_out):
        for start in range(len(text) - window + 1):
            chunk = text[start:start + window]
            if chunk in shared.get(hash(chunk), ()):
                overlapping.add(index)
                break

    return overlapping


def to_record(document: Document) -> dict:
    """Return the Pile record of a document."""
    return {"text": document.text, "meta": {"pile_set_name": document.pile_set_name}}


def write_shard(path: Path, records: list[dict]) -> int:
    """Write records as zstd-compressed JSON lines, atomically; return the compressed size in bytes."""
    payload = "".join(json.dumps(record) + "\n" for record in records).encode("utf-8")
    compressed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(payload)

    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(compressed)
    partial.replace(path)

    return len(compressed)


def format_counts_table(split_records: dict[str, list[dict]]) -> str:
    """Return a Markdown table of documents and UTF-8 text bytes per pile_set_name and split.

    Args:
        split_records: Pile records of each split, keyed by split name.
    """
    counts = defaultdict(Counter)
    for split, records in split_records.items():
        for record in records:
            name = record["meta"]["pile_set_name"]
            counts[name][f"{split} docs"] += 1
            counts[name][f"{split} bytes"] += utf8_len(record["text"])

    columns = [f"{split} {unit}" for split in split_records for unit in ("docs", "bytes")]
    lines = ["| pile_set_name | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for name in sorted(counts) + ["total"]:
        row = counts[name] if name != "total" else sum(counts.values(), Counter())
        lines.append(f"| {name} | " + " | ".join(f"{row[column]:,}" for column in columns) + " |")

    return "\n".join(lines)


def format_notice(splits: dict[str, list[Document]], stdlib: Path, licenses_dir: Path) -> str:
    """Return the NOTICE text: every source path that contributed a document, with its licence."""
    used = defaultdict(set)
    for documents in splits.values():
        for document in documents:
            used[document.pile_set_name].add(document.path)

    def listing(name: str, root: Path) -> list[str]:
        return [f"    {path.relative_to(root).as_posix()}" for path in sorted(used[name])]

    topic_names = sorted({document.part.split(" part ")[0] for documents in splits.values()
                          for document in documents if document.pile_set_name == "Pile-CC"})
    lines = [
        "mini-Pile: sources and licences",
        "================================",
        "",
        "This corpus is generated by resources/minipile/build.py from the files listed below.",
        "Text is copied verbatim except that line endings are normalised to \\n, long files are split",
        "on blank lines into parts, and the StackExchange documents keep only the docstrings of each file.",
        "The pile_set_name of each document names the subset of The Pile that its kind of text represents.",
        "",
        "1. CPython standard library",
        f"   Root: {stdlib}",
        "   Licence: PSF License Agreement for Python (the full text is in LICENSE.txt at the root,",
        "   which is also included in the corpus as a FreeLaw document).",
        "",
        "   Github: the source text of these files (paths relative to the root):",
        *listing("Github", stdlib),
        "",
        "   StackExchange: the module, class and function docstrings of these files:",
        *listing("StackExchange", stdlib),
        "",
        "   Pile-CC: these reference documentation topics from pydoc_data/topics.py",
        "   (generated from the Python documentation, Copyright Python Software Foundation, PSF licence):",
        *[f"    {name}" for name in topic_names],
        "",
        "2. Licence texts (FreeLaw)",
        "   The licence texts are reproduced verbatim, which each of them permits",
        "   (for example: 'Everyone is permitted to copy and distribute verbatim copies of this license",
        "   document, but changing it is not allowed.' in the GNU licences).",
        *[f"    {path.as_posix()}" for path in sorted(used["FreeLaw"])],
        "",
        f"   Debian's {licenses_dir} is part of the base-files package. A symlink to a file already",
        "   read (an alias such as GPL -> GPL-3) was not read again.",
        "",
    ]

    return "\n".join(lines)


def build(out_dir: Path, stdlib: Path, licenses_dir: Path, seed: int = SEED) -> dict[str, list[dict]]:
    """Build the corpus into ``out_dir`` and return the Pile records written to each split.

    Args:
        out_dir: Where ``train.jsonl.zst``, ``val.jsonl.zst`` and ``NOTICE`` are written.
        stdlib: CPython's standard-library directory.
        licenses_dir: Debian's common-licenses directory.
        seed: Seed of the document shuffle within each split.
    """
    for required in (stdlib / "os.py", stdlib / "LICENSE.txt", stdlib / "pydoc_data" / "topics.py"):
        if not required.is_file():
            raise CorpusBuildError(f"--stdlib {stdlib}: missing {required.relative_to(stdlib)}, "
                                   "so this is not CPython's standard-library directory")
    if not licenses_dir.is_dir():
        raise CorpusBuildError(f"--licenses {licenses_dir}: not a directory. "
                               f"Expected a directory of licence texts such as {DEFAULT_LICENSES_DIR}")

    logger.info("Building mini-Pile from %s and %s into %s", stdlib, licenses_dir, out_dir)
    skipped = Counter({"binary file": 0, "undecodable file": 0, "syntax error": 0})
    documents = collect_stdlib_documents(stdlib, skipped)
    documents += collect_topic_documents(stdlib, skipped)
    documents += collect_license_documents(licenses_dir, stdlib, skipped)
    logger.info("Collected %d documents", len(documents))

    family_split = assign_splits(documents)
    splits = {split: [document for document in documents if family_split[document.family] == split] for split in SPLITS}

    overlapping = find_overlapping([document.text for document in splits["val"]],
                                   [document.text for document in splits["train"]])
    for index in sorted(overlapping):
        document = splits["val"][index]
        logger.info("Dropping val document that shares a %d-character window with train: %s %s %s",
                    OVERLAP_WINDOW_CHARS, document.pile_set_name, document.path, document.part)
    logger.info("Dropped %d of %d val documents for overlap with train", len(overlapping), len(splits["val"]))
    skipped["val document overlapping train"] += len(overlapping)
    splits["val"] = [document for index, document in enumerate(splits["val"]) if index not in overlapping]

    for reason, count in sorted(skipped.items()):
        logger.info("Skipped %d: %s", count, reason)

    out_dir.mkdir(parents=True, exist_ok=True)
    split_records = {}
    for split in SPLITS:
        ordered = sorted(splits[split], key=lambda document: (document.pile_set_name, str(document.path), document.part))
        random.Random(f"{seed}:{split}").shuffle(ordered)
        split_records[split] = [to_record(document) for document in ordered]
        size = write_shard(out_dir / f"{split}.jsonl.zst", split_records[split])
        logger.info("Wrote %s: %d documents, %d compressed bytes", out_dir / f"{split}.jsonl.zst", len(ordered), size)

    (out_dir / "NOTICE").write_text(format_notice(splits, stdlib, licenses_dir), encoding="utf-8")
    logger.info("Counts per pile_set_name:\n%s", format_counts_table(split_records))

    return split_records


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory, e.g. resources/minipile")
    parser.add_argument("--stdlib", type=Path, default=Path(sysconfig.get_paths()["stdlib"]),
                        help="CPython standard-library directory (default: this interpreter's)")
    parser.add_argument("--licenses", type=Path, default=DEFAULT_LICENSES_DIR,
                        help=f"licence texts directory (default: {DEFAULT_LICENSES_DIR})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"shuffle seed (default: {SEED})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and build the corpus."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    build(args.out, args.stdlib.resolve(), args.licenses, args.seed)


if __name__ == "__main__":
    main()
