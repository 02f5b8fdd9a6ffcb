"""Model folders that share components with a base folder: an extra shipped model is its transformer (and its
method's layers), in bfloat16, beside the default model, whose autoencoder, text encoder and tokenizer it reuses.

The folder is a pipeline folder whose ``base_model.json`` names the base (a path relative to the folder, so the
two move together — the repository's ``checkpoints/`` and an install's ``share/anyframe/`` alike) and the
components taken from it::

    {"base": "../anyframe-world-s", "components": ["vae", "text_encoder", "tokenizer"]}

A folder may share the base's transformer too and hold the fine-tune as a LoRA instead (``"lora": "lora"``: a
subfolder in the format of the training recipe's LoRA export, extracted from the full fine-tune by
:func:`~anyframe.models.lora_extract.extract_lora`; ``"transformer_config"``: the fine-tune's config entries that
say what it was trained on), which ``AnyFramePipeline.from_pretrained`` loads onto the base's transformer, adapted
by the folder's own conditioning method::

    {"base": "../anyframe-world-s", "components": ["vae", "text_encoder", "tokenizer", "transformer"],
     "lora": "lora", "transformer_config": {"trained_window": {...}}}

:func:`shared_components` loads the shared components from the base for ``AnyFramePipeline.from_pretrained``;
:func:`write_with_base` writes such a folder from a pipeline whose shared components are the base's, bit for bit
(or, with ``lora_rank``, whose transformer is a fine-tune of the base's). (diffusers has no notion of a component
living in another folder; this is the small part it lacks.)
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from anyframe.errors import AnyframeInputError
from anyframe.io import atomic_dir, read_json_object

BASE_FILE = "base_model.json"
SHARED = ("vae", "text_encoder", "tokenizer")


def read_base(path: Path) -> tuple[Path, list[str]] | None:
    """(base folder, shared component names) of a folder with a ``base_model.json``; None without one. Every
    problem — a malformed file, a base that is not there or is itself based on another, a component the folder
    also holds or the base lacks — is one input error."""
    file = Path(path) / BASE_FILE
    if not file.is_file():
        return None
    spec = read_json_object(file)
    base, names = spec.get("base"), spec.get("components")
    if not isinstance(base, str) or not base or not isinstance(names, list) or not names \
            or not all(isinstance(n, str) and n for n in names):
        raise AnyframeInputError(f"{file}: want {{\"base\": \"<folder>\", \"components\": [\"vae\", ...]}}")
    folder = (Path(path) / base).resolve()
    if not (folder / "model_index.json").is_file():
        raise AnyframeInputError(f"{file}: its base model {base} is not there ({folder}); the folder shares "
                                 f"{', '.join(names)} with it, so the two must be installed side by side")
    if (folder / BASE_FILE).is_file():
        raise AnyframeInputError(f"{file}: its base {folder} is itself based on another folder (one level only)")
    index = read_json_object(Path(path) / "model_index.json")
    for name in names:
        if name not in index:
            raise AnyframeInputError(f"{file}: {name} is not a component of this pipeline (model_index.json)")
        if (Path(path) / name).exists():
            raise AnyframeInputError(f"{file}: {name} is both shared with the base and in this folder")
        if not (folder / name).is_dir():
            raise AnyframeInputError(f"{file}: the base {folder} has no {name}/")
    return folder, names


def lora_of(path: Path) -> tuple[Path, dict] | None:
    """(LoRA folder, transformer config entries) of a folder whose ``base_model.json`` holds its fine-tune as a LoRA
    on the base's transformer; None otherwise (the file's other entries: :func:`read_base`)."""
    if read_base(path) is None:
        return None
    file = Path(path) / BASE_FILE
    spec = read_json_object(file)
    if "lora" not in spec:
        return None
    lora, config = spec["lora"], spec.get("transformer_config", {})
    if not isinstance(lora, str) or not lora or not isinstance(config, dict):
        raise AnyframeInputError(f"{file}: want \"lora\": \"<subfolder>\" and \"transformer_config\": {{...}}")
    if "transformer" not in spec["components"]:
        raise AnyframeInputError(f"{file}: a LoRA goes onto the base's transformer, which it does not share")
    folder = Path(path) / lora
    if not (folder / "pytorch_lora_weights.safetensors").is_file():
        raise AnyframeInputError(f"{file}: its LoRA {folder} has no pytorch_lora_weights.safetensors")
    return folder, config


def shared_components(path: Path, dtype: torch.dtype | dict | None = None) -> dict:
    """The components ``path`` shares with its base, loaded from the base (``{}`` for an ordinary folder).
    ``dtype``: diffusers' ``dtype`` argument (one dtype, or ``{"default": ..., name: ...}``)."""
    based = read_base(path)
    if based is None:
        return {}
    base, names = based
    index = read_json_object(base / "model_index.json")
    out = {}
    for name in names:
        library, class_name = index[name]
        cls = getattr(importlib.import_module(library), class_name)
        kwargs = {}
        want = dtype.get(name, dtype.get("default")) if isinstance(dtype, dict) else dtype
        if want is not None and isinstance(cls, type) and issubclass(cls, torch.nn.Module):
            kwargs["dtype" if library == "diffusers" else "torch_dtype"] = want
        try:
            out[name] = cls.from_pretrained(str(base / name), local_files_only=True, **kwargs)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise AnyframeInputError(f"cannot load {name} from the base model {base}: "
                                     f"{' '.join(str(exc).split())[:300]}") from None
    return out


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for file in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(file)))
    return out


# keys a save records about where a tokenizer was loaded from, not what it is
_PROVENANCE = {"is_local", "local_files_only", "name_or_path", "_name_or_path", "_commit_hash"}


def _same_file(a: Path, b: Path) -> bool:
    if a.suffix == ".json":
        try:
            x, y = json.loads(a.read_text()), json.loads(b.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return a.read_bytes() == b.read_bytes()
        if isinstance(x, dict) and isinstance(y, dict):
            return {k: v for k, v in x.items() if k not in _PROVENANCE} == \
                {k: v for k, v in y.items() if k not in _PROVENANCE}
        return x == y
    return a.read_bytes() == b.read_bytes()


def write_with_base(pipe, out: str | os.PathLike, base: str | os.PathLike, components=SHARED,
                    dtype: torch.dtype = torch.bfloat16, lora_rank: int | None = None):
    """Write ``pipe`` to ``out`` without ``components``, which it takes from ``base`` when loaded, and with its
    other weights (the transformer, the method's layers) stored in ``dtype``. Refused unless each shared
    component's files are the base's (weights bit for bit, tokenizer files byte for byte): the folder must
    generate exactly what ``pipe`` does, up to ``dtype``. ``lora_rank``: the transformer is shared too, and
    ``pipe``'s, a fine-tune of the base's, is written as a LoRA of that rank
    (:func:`~anyframe.models.lora_extract.extract_lora`; the folder then generates what ``pipe`` does up to the
    rank's cut). Returns the folder, and the extracted LoRA (or None)."""
    out, base = Path(out), Path(base).resolve()
    if not (base / "model_index.json").is_file():
        raise AnyframeInputError(f"--base {base}: not a pipeline folder (no model_index.json)")
    if read_base(base) is not None:
        raise AnyframeInputError(f"--base {base} is itself based on another folder (one level only)")
    lora, config = (None, {}) if lora_rank is None else _extract(pipe, base, lora_rank)
    with atomic_dir(out) as tmp:
        pipe.save_pretrained(tmp / "full")
        full = tmp / "full"
        for name in components:
            mine, theirs = full / name, base / name
            if not theirs.is_dir():
                raise AnyframeInputError(f"--base {base} has no {name}/")
            a, b = _tensors(mine), _tensors(theirs)
            same = a.keys() == b.keys() and all(torch.equal(a[k].float(), b[k].float()) for k in a)
            if not a:  # no weights (the tokenizer): its files
                files = sorted(p.name for p in mine.iterdir())
                same = files == sorted(p.name for p in theirs.iterdir()) and all(
                    _same_file(mine / f, theirs / f) for f in files)
            if not same:
                raise AnyframeInputError(f"this model's {name} is not the base's ({theirs}): it cannot share it")
            shutil.rmtree(mine)
        spec = {"components": list(components)}
        if lora is not None:
            from diffusers import WanPipeline

            shutil.rmtree(full / "transformer")
            spec = {"components": [*components, "transformer"], "lora": "lora", "transformer_config": config}
            # the classmethod only formats and writes the file: any pipeline's LoRA layout is the same
            WanPipeline.save_lora_weights(full / "lora", transformer_lora_layers=lora.layers, safe_serialization=True)
            if lora.whole:
                save_file({f"transformer.{k}": v.contiguous() for k, v in lora.whole.items()},
                          str(full / "lora" / "adapted_layers.safetensors"))
        for folder in (p for p in full.iterdir() if p.is_dir()):
            for file in folder.glob("*.safetensors"):
                tensors = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in load_file(str(file)).items()}
                save_file(tensors, str(file), metadata={"format": "pt"})
        relative = os.path.relpath(base, out.resolve().parent / out.name)
        (full / BASE_FILE).write_text(json.dumps({"base": relative, **spec}, indent=2) + "\n")
        for item in full.iterdir():
            os.replace(item, tmp / item.name)
        full.rmdir()
    return out, lora


# what a fine-tune's config may change without changing its architecture (the rest must be the base's, adapted)
_TRAINING_RECORD = ("trained_window",)


def _extract(pipe, base: Path, rank: int):
    """The LoRA of ``pipe``'s transformer over the base's (adapted by ``pipe``'s method), and the config entries
    that record its training; refused unless the two are one architecture."""
    from diffusers import ModelMixin

    from anyframe.models.lora_extract import extract_lora

    index = read_json_object(base / "model_index.json")
    library, class_name = index.get("transformer", [None, None])
    cls = getattr(importlib.import_module(library), class_name, None) if library else None
    if not (isinstance(cls, type) and issubclass(cls, ModelMixin)):
        raise AnyframeInputError(f"--base {base}: no transformer to share")
    try:
        start = cls.from_pretrained(str(base / "transformer"), local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise AnyframeInputError(f"cannot load the transformer of --base {base}: {' '.join(str(exc).split())[:300]}") from None
    tuned = pipe.transformer
    start = pipe.conditioning.adapt_backbone(start.to(next(tuned.parameters()).dtype))
    mine = {k: v for k, v in tuned.config.items() if not k.startswith("_") and k not in _TRAINING_RECORD}
    theirs = {k: v for k, v in start.config.items() if not k.startswith("_") and k not in _TRAINING_RECORD}
    if type(start) is not type(tuned) or mine != theirs:
        differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise AnyframeInputError(f"this model's transformer is not a fine-tune of the base's ({base}): its config "
                                 f"differs in {', '.join(differ[:4]) or type(tuned).__name__}")
    targets = getattr(tuned, "lora_target_modules", None)
    if not targets:
        raise AnyframeInputError(f"{type(tuned).__name__} names no LoRA target modules")
    lora = extract_lora(start, tuned, rank, targets)
    config = {k: tuned.config[k] for k in _TRAINING_RECORD if k in tuned.config and tuned.config[k] != start.config.get(k)}
    return lora, config
