"""GGUF checkpoints (llama.cpp's format) as plain fp32 Hugging Face folders, cached on disk.

transformers reads a GGUF file with ``from_pretrained(dir, gguf_file=...)`` (the ``gguf``
package parses it) and dequantizes every tensor: for SmolLM2-135M (Q4_1, 98 MB) that costs
about 30 s on 2 CPU cores, and the tokenizer alone about 7 s. So the first load converts the
file once into ``$EVOCL_CACHE/gguf/<stem>-<key>/{model,tokenizer}/`` (safetensors + config +
tokenizer files: no pickle) and every later load reads that folder in about a second.

- The key hashes the GGUF file's resolved path, size and mtime, and the transformers version
  (the conversion is transformers' code): a changed file or library makes a new entry.
- Each part is written in a temporary folder beside its final place, every file fsync'd, then
  renamed into place: a reader sees a complete folder or none. Two workers converting at once
  both succeed; the second rename loses and its copy is deleted.
- The converted model is clean: the GGUF quantizer is detached, so PEFT and ``save_pretrained``
  see an ordinary fp32 model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from evocl.errors import BackboneError

MAGIC = b"GGUF"
FORMAT = "evocl-gguf-v1"
PIP_GGUF = "pip install gguf"


def require_gguf(field: str) -> None:
    """BackboneError naming the install when the ``gguf`` package is missing."""
    if importlib.util.find_spec("gguf") is None:
        raise BackboneError(f"reading a GGUF file needs the `gguf` package; run `{PIP_GGUF}`",
                            source="backbone", field=field)


def check_gguf_file(path: Path) -> None:
    """BackboneError unless ``path`` is a readable file that starts with the GGUF magic."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise BackboneError(f"cannot read GGUF file ({exc.strerror or exc})", source=str(path),
                            field="gguf_file") from None
    if head != MAGIC:
        raise BackboneError(f"not a GGUF file (starts with {head!r}, expected {MAGIC!r})",
                            source=str(path), field="gguf_file")


def find_gguf(folder: Path) -> Path | None:
    """The folder's only ``.gguf`` file (None without one; BackboneError with several)."""
    files = sorted(p for p in folder.glob("*.gguf") if p.is_file())
    if len(files) > 1:
        raise BackboneError(f"holds {len(files)} .gguf files ({', '.join(p.name for p in files)}); "
                            "give a folder with one", source=str(folder), field="gguf_file")
    return files[0] if files else None


def cache_root() -> Path:
    """``$EVOCL_CACHE/gguf`` (default ``~/.cache/evocl/gguf``)."""
    env = os.environ.get("EVOCL_CACHE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "evocl"
    return base / "gguf"


def cache_key(path: Path) -> str:
    import transformers

    st = path.stat()
    ident = [FORMAT, str(path.resolve()), st.st_size, st.st_mtime_ns, transformers.__version__]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:16]


def entry(path: Path, part: str) -> Path:
    """The cache folder of ``part`` ("model" or "tokenizer") of the GGUF file ``path``."""
    return cache_root() / f"{path.stem}-{cache_key(path)}" / part


def load_tokenizer(path: Path) -> Any:
    """The GGUF file's tokenizer (from the cache; converted and cached on first use)."""
    from transformers import AutoTokenizer

    folder = cached(path, "tokenizer")
    if folder is not None:
        try:
            return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt, never trusted
            shutil.rmtree(folder, ignore_errors=True)
    tok = _convert(lambda: AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name,
                                                         local_files_only=True), path)
    _store(path, "tokenizer", tok.save_pretrained)
    return tok


def load_model(path: Path, prepare_config: Any = None, *, rebuilt: bool = False) -> Any:
    """The GGUF file's ``*ForCausalLM``, dequantized to fp32 (cached on first use).

    ``prepare_config(config)`` may edit the config before the weights load (dropout off).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = cached(path, "model")
    if folder is None:
        model = _convert(lambda: AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32, local_files_only=True),
            path)
        detach_quantizer(model)
        if _store(path, "model", model.save_pretrained):
            folder = cached(path, "model")
        if folder is None:  # the cache cannot be written: use the converted model as it is
            if prepare_config is not None:
                prepare_config(model.config)
            return model
        del model
    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        if prepare_config is not None:
            prepare_config(config)
        return AutoModelForCausalLM.from_pretrained(str(folder), config=config,
                                                    dtype=torch.float32, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged cache entry is rebuilt once, never trusted
        if rebuilt:
            raise BackboneError(f"cannot load the converted checkpoint ({type(exc).__name__})",
                                source=str(folder), field="gguf cache") from None
        shutil.rmtree(folder, ignore_errors=True)
        return load_model(path, prepare_config, rebuilt=True)


def detach_quantizer(model: Any) -> None:
    """Make a GGUF-loaded model an ordinary fp32 model (its weights are dequantized already)."""
    model.hf_quantizer = None
    for attr, value in (("is_quantized", False), ("quantization_method", None)):
        if attr in vars(model):
            setattr(model, attr, value)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _convert(load: Any, path: Path) -> Any:
    from evocl.cl.backbone import quiet_transformers

    require_gguf(str(path))
    check_gguf_file(path)
    old = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"  # the dequantization bar is a plain tqdm
    try:
        with quiet_transformers():
            return load()
    except Exception as exc:  # noqa: BLE001 - the gguf parser raises many types on a bad file
        first = (str(exc).splitlines() or [""])[0][:200]
        raise BackboneError(f"cannot read GGUF file ({type(exc).__name__}: {first})",
                            source=str(path), field="gguf_file") from None
    finally:
        if old is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = old


def cached(path: Path, part: str) -> Path | None:
    """The complete cache folder of ``part`` of ``path``, or None."""
    folder = entry(path, part)
    try:
        done = json.loads((folder / "complete.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return folder if isinstance(done, dict) and done.get("format") == FORMAT else None


def _store(path: Path, part: str, save: Any) -> bool:
    """Write ``part`` with ``save(folder)`` into a temporary folder, then rename it into place.

    Returns whether the cache now holds it; a cache that cannot be written only costs speed."""
    final = entry(path, part)
    tmp = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{part}-", dir=final.parent))
        save(str(tmp))
        st = path.stat()
        (tmp / "complete.json").write_text(json.dumps(
            {"format": FORMAT, "source": str(path.resolve()), "size": st.st_size,
             "mtime_ns": st.st_mtime_ns}), encoding="utf-8")
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        try:
            os.rename(tmp, final)
        except OSError:  # another process stored it first
            pass
        else:
            tmp = None
            from evocl.storage.atomic import fsync_dir

            fsync_dir(final.parent)
    except OSError:
        pass
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return cached(path, part) is not None
