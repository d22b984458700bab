"""Find and load causal language models: a local `save_pretrained` folder or a hub id in the local cache.

A model is named by a `ModelSpec`: either a local folder (`path`) or a Hugging Face hub id (`hub_id`, such
as `EleutherAI/pythia-160m-deduped`), a `revision` and the `dtype` to load the weights in.

This pipeline never downloads a model. `check_model_available` looks only at the local disk, is cheap
(no torch import), and is meant to run before any job starts, so a missing checkpoint fails at once with a
message explaining how to provide it. Loading then reads the same local folder with
`local_files_only=True` regardless of `HF_HUB_OFFLINE`, and always with `trust_remote_code=False`.

Revisions:
- Hub id: the revision is a branch, tag or commit of the hub repository (Pythia publishes the branches
  `step0` to `step143000`; `main` is `step143000`). It must be in the Hugging Face cache, which is found
  from `HF_HUB_CACHE` or `HF_HOME` as the hub client finds it.
- Local folder: each revision is a subfolder named after it (`path/step1000/config.json`). A folder with
  `config.json` at its top holds a single checkpoint, which is revision `main`. Any other revision that
  has no subfolder is an error naming the folder and the revision.

Pythia's tokenizer has 50,277 tokens, while its embedding and logits have 50,304 rows (padded for speed).
Anything sized by the vocabulary therefore uses the model's logits, see `vocab_sizes`. Pythia has no pad
token, and none is ever added to the vocabulary here.
"""

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class ModelSpecError(ValueError):
    """Error raised when a model's configuration is invalid."""


class ModelNotAvailableError(FileNotFoundError):
    """Error raised when a model's files are not on the local disk, so loading it would need a download."""


@dataclass(frozen=True)
class ModelSpec:
    """Model to load: its source (local folder or hub id), revision and dtype.

    Exactly one of `path` and `hub_id` is set.

    Args:
        path: a local folder written by `save_pretrained`, or containing one such folder per revision.
        hub_id: a Hugging Face hub repository id, such as `EleutherAI/pythia-160m-deduped`.
        revision: a branch, tag or commit (`main`, `step143000`); see the module docstring for folders.
        dtype: the dtype to load the weights in: `float32`, `bfloat16` or `float16`.
    """

    path: Path | None = None
    hub_id: str | None = None
    revision: str = "main"
    dtype: str = "float32"

    def __post_init__(self):
        if (self.path is None) == (self.hub_id is None):
            raise ModelSpecError(
                f"a model needs exactly one of 'path' (a local folder) and 'hub_id' (such as "
                f"'EleutherAI/pythia-160m-deduped'); got path={self.path!r}, hub_id={self.hub_id!r}"
            )
        if self.path is not None and not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))
        if self.hub_id is not None:
            _check_hub_id(self.hub_id)
        if not isinstance(self.revision, str) or not self.revision.strip():
            raise ModelSpecError(
                f"revision {self.revision!r} is not valid; give a branch, tag or commit such as "
                "'main' or 'step143000'"
            )
        names_subfolder = self.revision not in (".", "..") and not any(sep in self.revision for sep in "/\\")
        if self.path is not None and not names_subfolder:
            raise ModelSpecError(
                f"revision {self.revision!r} cannot name a subfolder of {self.path}; "
                "use a plain name such as 'main' or 'step143000'"
            )
        if self.dtype not in DTYPES:
            raise ModelSpecError(f"dtype {self.dtype!r} is not supported; valid dtypes are {list(DTYPES)}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], name: str = "model") -> "ModelSpec":
        """Build a spec from a config mapping with `path` or `hub_id`, and optional `revision` and `dtype`.

        Other keys of the mapping belong to other stages (for example the demo model's training settings)
        and are not read here.

        Args:
            config: the model's config mapping.
            name: the model's config key, named in errors.
        """
        if not isinstance(config, Mapping):
            raise ModelSpecError(
                f"model {name!r}: expected a mapping with 'path' or 'hub_id', got {config!r}"
            )

        try:
            return cls(
                path=config.get("path"),
                hub_id=config.get("hub_id"),
                revision=config.get("revision", "main"),
                dtype=config.get("dtype", "float32"),
            )
        except ModelSpecError as error:
            raise ModelSpecError(f"model {name!r}: {error}") from error

    @property
    def label(self) -> str:
        """The hub id, or the local folder as written in the config."""
        return self.hub_id if self.hub_id is not None else str(self.path)

    def __str__(self) -> str:
        return f"{self.label}@{self.revision} ({self.dtype})"


def _check_hub_id(hub_id: str) -> None:
    """Raise `ModelSpecError` unless `hub_id` is a well-formed hub repository id."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(hub_id)
    except HFValidationError as error:
        raise ModelSpecError(f"hub_id {hub_id!r} is not a valid repository id: {error}") from error


def hub_cache_dir() -> Path:
    """Return the Hugging Face hub cache folder, read from the environment at call time.

    `HF_HUB_CACHE` wins, then the older `HUGGINGFACE_HUB_CACHE`, then `HF_HOME/hub`, then
    `XDG_CACHE_HOME/huggingface/hub`, then `~/.cache/huggingface/hub`: the order the hub client uses.
    Reading it here, not from the client's constants (fixed when it is imported), lets a process change
    its cache before loading a model.
    """
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.path.expandvars(os.environ[variable])).expanduser()

    hf_home = os.environ.get("HF_HOME")
    if not hf_home:
        hf_home = os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")

    return Path(os.path.expandvars(hf_home)).expanduser() / "hub"


def _is_offline() -> bool:
    """Return whether `HF_HUB_OFFLINE` (or the older `TRANSFORMERS_OFFLINE`) is set to a true value."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in ("1", "true", "yes", "on")


def _download_hint(spec: ModelSpec) -> str:
    """Say how to make a hub model available without this pipeline touching the network."""
    return (
        f"On a machine with internet, run `hf download {spec.hub_id} --revision {spec.revision}` "
        f"(`huggingface-cli download {spec.hub_id} --revision {spec.revision}` with older clients) and copy "
        f"the cache to {hub_cache_dir()} here (or point HF_HOME at it), or give the model a local 'path' "
        "to a save_pretrained folder instead"
    )


def _resolve_local_folder(spec: ModelSpec) -> Path:
    """Return the folder containing `spec`'s revision under its local `path`."""
    folder = spec.path
    if not folder.is_dir():
        raise ModelNotAvailableError(f"model folder {folder} does not exist (model {spec})")

    revision_folder = folder / spec.revision
    if (revision_folder / CONFIG_FILE).is_file():
        return revision_folder
    if spec.revision == "main" and (folder / CONFIG_FILE).is_file():
        return folder

    revisions = sorted(child.name for child in folder.iterdir() if (child / CONFIG_FILE).is_file())
    if (folder / CONFIG_FILE).is_file():
        raise ModelNotAvailableError(
            f"model folder {folder} has no revision {spec.revision!r}: it contains one checkpoint "
            f"({CONFIG_FILE} at its top), which is revision 'main'. Set revision: main, or put the "
            f"{spec.revision} checkpoint in {revision_folder}"
        )
    raise ModelNotAvailableError(
        f"model folder {folder} has no revision {spec.revision!r}: expected {revision_folder / CONFIG_FILE}"
        + (f"; revisions found: {revisions}" if revisions else f", or {CONFIG_FILE} at its top for 'main'")
    )


def _resolve_hub_snapshot(spec: ModelSpec) -> Path:
    """Return the cached snapshot folder of `spec`'s hub id and revision, looking only at the local cache."""
    from huggingface_hub import try_to_load_from_cache

    cache = hub_cache_dir()
    cached = try_to_load_from_cache(spec.hub_id, CONFIG_FILE, cache_dir=cache, revision=spec.revision)
    if not isinstance(cached, str):
        state = "is recorded as absent from" if cached is not None else "is not in"
        raise ModelNotAvailableError(
            f"model {spec.hub_id} at revision {spec.revision!r}: its {CONFIG_FILE} {state} the Hugging Face "
            f"cache {cache}, and this pipeline never downloads models. {_download_hint(spec)}"
        )

    return Path(cached).parent


def resolve_model_folder(spec: ModelSpec) -> Path:
    """Return the local folder to load `spec` from.

    That is the local folder or its revision subfolder, or the cached hub snapshot. Only the local disk is
    read, and `ModelNotAvailableError` is raised when the folder has no `config.json`.
    """
    if spec.path is not None:
        return _resolve_local_folder(spec)

    return _resolve_hub_snapshot(spec)


def _missing_weights(folder: Path) -> str | None:
    """Return what weight files `folder` lacks, or None when its weights are complete."""
    if any((folder / name).is_file() for name in WEIGHT_FILES):
        return None

    for index_name in WEIGHT_INDEX_FILES:
        index_path = folder / index_name
        if not index_path.is_file():
            continue

        shards = set(_read_json(index_path).get("weight_map", {}).values())
        missing = sorted(shard for shard in shards if not (folder / shard).is_file())
        if not shards:
            return f"{index_path} lists no weight files"
        return f"shards {missing} listed in {index_name}" if missing else None

    return f"weights: none of {list(WEIGHT_FILES + WEIGHT_INDEX_FILES)}"


def check_model_available(spec: ModelSpec, need_tokenizer: bool = True) -> None:
    """Raise `ModelNotAvailableError` unless `spec`'s config, weights and tokenizer are on the local disk.

    Never touches the network and never imports torch, so a workflow can call it for every model before
    any job runs.

    Args:
        spec: the model to check.
        need_tokenizer: also require tokenizer files (`tokenizer.json` or `tokenizer_config.json`).
    """
    folder = resolve_model_folder(spec)

    missing = _missing_weights(folder)
    has_tokenizer = any((folder / name).is_file() for name in TOKENIZER_FILES)
    if missing is None and need_tokenizer and not has_tokenizer:
        missing = f"a tokenizer: none of {list(TOKENIZER_FILES)}"
    if missing is not None:
        hint = "Save the model there with save_pretrained"
        if spec.hub_id is not None:
            hint = _download_hint(spec)
        raise ModelNotAvailableError(f"model {spec}: folder {folder} lacks {missing}. {hint}")

    logger.info(
        "model %s is available in %s%s", spec, folder, " (HF_HUB_OFFLINE is set)" if _is_offline() else ""
    )


def _read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object from `path`, raising a `ValueError` that names the file when it is malformed."""
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(content).__name__}")

    return content


def model_config(spec: ModelSpec) -> dict[str, Any]:
    """Return the model's `config.json` as a dict, without loading weights or importing torch."""
    return _read_json(resolve_model_folder(spec) / CONFIG_FILE)


def model_context_length(spec: ModelSpec) -> int:
    """Return the model's context length in tokens (`max_position_embeddings`), without loading weights."""
    config_path = resolve_model_folder(spec) / CONFIG_FILE
    context_length = _read_json(config_path).get("max_position_embeddings")
    if not isinstance(context_length, int) or context_length < 1:
        raise ValueError(
            f"{config_path}: max_position_embeddings is {context_length!r}; expected a positive integer"
        )

    return context_length


def model_provenance(spec: ModelSpec) -> dict[str, str | None]:
    """Return what identifies the loaded weights, for artifacts' provenance.

    `commit` is the hub commit of a cached snapshot (the snapshot folder's name), or None for a local folder.
    """
    folder = resolve_model_folder(spec)

    return {
        "model": spec.label,
        "revision": spec.revision,
        "commit": folder.name if spec.hub_id is not None else None,
        "dtype": spec.dtype,
        "folder": str(folder),
    }


def load_model(spec: ModelSpec, device: "str | torch.device" = "cpu") -> "PreTrainedModel":
    """Load the causal language model of `spec` from the local disk, in eval mode, on `device`.

    Args:
        spec: the model to load; checked with `check_model_available` first.
        device: where to put the model, such as `cpu` or `cuda:0`.
    """
    check_model_available(spec, need_tokenizer=False)
    folder = resolve_model_folder(spec)

    import torch
    from transformers import AutoModelForCausalLM

    started = time.monotonic()
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        dtype=getattr(torch, spec.dtype),
        local_files_only=True,
        trust_remote_code=False,
    )
    model.to(device)
    model.eval()

    parameters = sum(parameter.numel() for parameter in model.parameters())
    logger.info(
        "loaded model %s from %s: %d parameters on %s in %.1f s",
        spec,
        folder,
        parameters,
        device,
        time.monotonic() - started,
    )
    return model


def load_tokenizer(spec: ModelSpec) -> "PreTrainedTokenizerBase":
    """Load the tokenizer saved with `spec`'s model, from the local disk. No token is ever added to it."""
    folder = resolve_model_folder(spec)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelNotAvailableError(f"model {spec}: folder {folder} has none of {list(TOKENIZER_FILES)}")

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    logger.info("loaded tokenizer of %s: %d tokens", spec, len(tokenizer))
    return tokenizer


@dataclass(frozen=True)
class VocabSizes:
    """The tokenizer's token count and the model's logit width, which may differ.

    Args:
        tokenizer: tokens the tokenizer can produce (50,277 for Pythia).
        logits: rows of the model's output embedding, the last dimension of its logits (50,304 for Pythia).
            Anything sized by the vocabulary uses this.
    """

    tokenizer: int
    logits: int


def vocab_sizes(model: "PreTrainedModel", tokenizer: "PreTrainedTokenizerBase") -> VocabSizes:
    """Return the tokenizer's and the model's vocabulary sizes, checking the tokenizer fits the model.

    A model may have more embedding rows than its tokenizer has tokens: Pythia's embedding has 50,304
    rows (a multiple of 128) for 50,277 tokens. The extra rows still take part in every softmax, so
    anything sized by the vocabulary (logit buffers, entropy, top-k) must use the model's logit width,
    never `len(tokenizer)`.
    """
    output_embeddings = model.get_output_embeddings()
    logits = output_embeddings.weight.shape[0] if output_embeddings is not None else model.config.vocab_size
    sizes = VocabSizes(tokenizer=len(tokenizer), logits=int(logits))

    if sizes.tokenizer > sizes.logits:
        raise ValueError(
            f"the tokenizer has {sizes.tokenizer} tokens but the model's logits only {sizes.logits} rows; "
            "they do not belong together"
        )
    if sizes.tokenizer < sizes.logits:
        logger.info(
            "the model has %d logit rows for %d tokenizer tokens; %d rows match no token",
            sizes.logits,
            sizes.tokenizer,
            sizes.logits - sizes.tokenizer,
        )
    return sizes


def eos_token_id(tokenizer: "PreTrainedTokenizerBase", model: "PreTrainedModel | None" = None) -> int:
    """Return the end-of-text token id: the tokenizer's, else the model config's (0 for Pythia).

    Args:
        tokenizer: the model's tokenizer.
        model: consulted when the tokenizer names no end-of-text token.
    """
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)

    config_eos = getattr(model.config, "eos_token_id", None) if model is not None else None
    if isinstance(config_eos, list):
        config_eos = config_eos[0] if config_eos else None
    if config_eos is None:
        raise ValueError("neither the tokenizer nor the model config names an end-of-text token")

    return int(config_eos)


def pad_token_id(tokenizer: "PreTrainedTokenizerBase", model: "PreTrainedModel | None" = None) -> int:
    """Return a token id to fill padded positions with: the pad token if defined, else end-of-text.

    Pythia defines no pad token; adding one would grow the vocabulary, so none is added. Filled positions
    must be masked out (attention mask, loss), which makes the id's value irrelevant.
    """
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)

    return eos_token_id(tokenizer, model)
