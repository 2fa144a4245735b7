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
- Each entry is verified before use (`entry_fault`): the SHA-256 of every file and of the
  source GGUF file, recorded when it was written; a changed, truncated, added or missing file
  (an edited ``chat_template.jinja``, a shifted vocabulary) is removed with one warning line
  naming it and converted again. A ``fcntl`` lock beside the entry makes one worker convert
  while the others wait and then read its result.
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
import warnings
from pathlib import Path
from typing import Any

from evocl.errors import BackboneError, UserError
from evocl.safefile import entry_lock, read_bytes

MAGIC = b"GGUF"
FORMAT = "evocl-gguf-v2"  # v2: the SHA-256 of the source and of every file
KEY_FORMAT = "evocl-gguf-v1"  # in the folder name: a v1 entry is replaced in place
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
    ident = [KEY_FORMAT, str(path.resolve()), st.st_size, st.st_mtime_ns, transformers.__version__]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:16]


def entry(path: Path, part: str) -> Path:
    """The cache folder of ``part`` ("model" or "tokenizer") of the GGUF file ``path``."""
    return cache_root() / f"{path.stem}-{cache_key(path)}" / part


def load_tokenizer(path: Path) -> Any:
    """The GGUF file's tokenizer (from the cache; converted and cached on first use)."""
    from transformers import AutoTokenizer

    folder = _usable(path, "tokenizer")
    if folder is not None:
        try:
            return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - a damaged cache entry is rebuilt, never trusted
            _drop(folder, f"does not load ({type(exc).__name__})")
    with entry_lock(_lock(path, "tokenizer")):  # one worker converts; the others wait for it
        folder = _usable(path, "tokenizer")
        if folder is not None:
            return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        tok = _convert(lambda: AutoTokenizer.from_pretrained(
            str(path.parent), gguf_file=path.name, local_files_only=True), path)
        _store(path, "tokenizer", tok.save_pretrained)
    return tok


def load_model(path: Path, prepare_config: Any = None, *, rebuilt: bool = False) -> Any:
    """The GGUF file's ``*ForCausalLM``, dequantized to fp32 (cached on first use).

    ``prepare_config(config)`` may edit the config before the weights load (dropout off).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = _usable(path, "model")
    if folder is None:
        with entry_lock(_lock(path, "model")):  # one worker converts; the others wait for it
            folder = _usable(path, "model")
            if folder is None:
                model = _convert(lambda: AutoModelForCausalLM.from_pretrained(
                    str(path.parent), gguf_file=path.name, dtype=torch.float32,
                    local_files_only=True), path)
                detach_quantizer(model)
                if _store(path, "model", model.save_pretrained):
                    folder = cached(path, "model", verify=False)  # verified as it was written
                if folder is None:  # the cache cannot be written: use the converted model
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
        _drop(folder, f"does not load ({type(exc).__name__})")
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
    from evocl.cl.backbone_types import quiet_transformers

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


def cached(path: Path, part: str, *, verify: bool = True) -> Path | None:
    """The complete cache folder of ``part`` of ``path``, or None. ``verify`` (the default)
    checks it as `entry_fault` does; without it, only its completion mark is read."""
    folder = entry(path, part)
    if not verify:
        try:
            done = json.loads((folder / "complete.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return folder if isinstance(done, dict) and done.get("format") == FORMAT else None
    return None if entry_fault(path, folder) else folder


def entry_fault(path: Path, folder: Path) -> str | None:
    """What is wrong with a cache folder of the GGUF file ``path``, or None when it may be
    used: its completion mark names the format, the source's size, mtime and SHA-256 (equal
    to ``path``'s now) and the SHA-256 of every file in it; the folder holds exactly those
    files, regular ones, no link, each with its digest (so an edited ``chat_template.jinja``,
    a shifted vocabulary or a truncated weights file is found). "missing" when absent."""
    try:
        done = json.loads(read_bytes(folder / "complete.json", follow=False))
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError, UserError) as exc:
        return f"has no readable completion mark ({type(exc).__name__})"
    if not isinstance(done, dict) or done.get("format") != FORMAT or not isinstance(
            done.get("files"), dict):
        return "is of another format"
    st = path.stat()
    if [done.get("size"), done.get("mtime_ns")] != [st.st_size, st.st_mtime_ns]:
        return "was converted from another version of the GGUF file"
    if done.get("source_sha256") != _sha256(path):
        return "was converted from a GGUF file with other content"
    found: dict[str, Path] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root) / name
            if p.is_symlink() or not (p.is_dir() or p.is_file()):
                return f"holds {p.relative_to(folder)}, which is not a regular file or folder"
        for name in files:
            rel = (Path(root) / name).relative_to(folder).as_posix()
            if rel != "complete.json":
                found[rel] = Path(root) / name
    if sorted(found) != sorted(done["files"]):
        extra = sorted(set(found) ^ set(done["files"]))
        return f"does not hold the files it was written with ({', '.join(extra)[:120]})"
    for rel, p in found.items():
        if _sha256(p) != done["files"][rel]:
            return f"has {rel} changed since it was written (its SHA-256 differs)"
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _usable(path: Path, part: str) -> Path | None:
    """The verified cache folder of ``part``, or None; a faulty one is removed with a line."""
    folder = entry(path, part)
    fault = entry_fault(path, folder)
    if fault is None:
        return folder
    if fault != "missing":
        _drop(folder, fault)
    return None


def _drop(folder: Path, fault: str) -> None:
    warnings.warn(f"{folder}: GGUF conversion cache entry {fault}; rebuilt", stacklevel=3)
    shutil.rmtree(folder, ignore_errors=True)


def _lock(path: Path, part: str) -> Path:
    """The lock file beside the cache folder of ``part`` (taken while it is converted)."""
    folder = entry(path, part)
    return folder.parent / f".{part}.lock"


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
        files = {}
        for f in sorted(tmp.rglob("*")):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
                files[f.relative_to(tmp).as_posix()] = _sha256(f)
        with open(tmp / "complete.json", "w", encoding="utf-8") as fh:
            json.dump({"format": FORMAT, "source": str(path.resolve()), "size": st.st_size,
                       "mtime_ns": st.st_mtime_ns, "source_sha256": _sha256(path),
                       "files": files}, fh)
            fh.flush()
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
    return cached(path, part, verify=False) is not None
