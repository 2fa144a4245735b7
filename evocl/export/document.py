"""What every export format shares: evocl's own document of a configuration (its scores and
where it came from), the LoRA configuration the evaluator builds, and the atomic file writes
that ``formats.write_selected`` redirects into its output folder. ``formats`` (the evocl, PEFT,
HF and Avalanche writers) and ``trainers`` (TRL, axolotl, LLaMA-Factory) both build on it, so
neither imports the other's internals."""

from __future__ import annotations

import datetime as _dt
import json
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable

from evocl import __version__
from evocl.records import Candidate, Result
from evocl.storage.atomic import atomic_write_bytes

EXPORT_FORMAT_VERSION = 1


#: Where the writers' files go while ``write_selected`` runs: ``place(path, data) -> path``
#: (an ``OutputFolder``'s, so a writer needs no knowledge of folders, manifests or links).
_PLACE: ContextVar[Callable[[Path, bytes], Path] | None] = ContextVar("evocl_export_place",
                                                                      default=None)


def _atomic_bytes(path: Path, data: bytes) -> Path:
    place = _PLACE.get()
    if place is not None:
        return place(path, data)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path


def _atomic_text(path: Path, text: str) -> Path:
    return _atomic_bytes(path, text.encode("utf-8"))


def _jsonable(o: Any) -> Any:
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=str)
    return str(o)


def _json(path: Path, data: Any) -> Path:
    return _atomic_text(path, json.dumps(data, indent=2, default=_jsonable) + "\n")


def evocl_document(view, cand: Candidate, res: Result) -> dict[str, Any]:
    """evocl's own export: the configuration, its scores and where it came from."""
    cfg = view.config
    prov: dict[str, Any] = {
        "run_dir": str(Path(cfg.run_dir).resolve()),
        "run_seed": cfg.seed,
        "algorithm": cfg.algorithm,
        "objective": cfg.objective,
        "space": cfg.space,
        "space_fingerprint": view.space.fingerprint,
    }
    if cfg.objective == "cl":
        fps = view.meta.get("fingerprints", {})
        prov.update({"stream": cfg.stream, "stream_fingerprint": fps.get("stream"),
                     "backbone": cfg.backbone, "backbone_fingerprint": fps.get("backbone")})
    prov.update({"evocl_version": __version__,
                 "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    scalars = {k: v for k, v in res.metrics.items() if isinstance(v, (int, float, str, bool))}
    return {
        "evocl_export": EXPORT_FORMAT_VERSION,
        "config": dict(cand.config),
        "candidate": {"id": cand.id, "seed": cand.seed, "generation": cand.generation,
                      "parents": list(cand.parents), "config_hash": cand.config_hash},
        "objectives": dict(res.objectives),
        "metrics": scalars,
        "evaluator_options": dict(cfg.evaluator_options),
        "provenance": prov,
    }


def lora_config_for(config: dict[str, Any], backbone: str) -> Any:
    """The ``peft.LoraConfig`` the evaluator builds for ``config`` on ``backbone`` (the same
    function, so an export can never drift from what was searched)."""
    from evocl.cl.backbone import load_backbone
    from evocl.cl.model import backbone_lora_config
    from evocl.cl.params import resolve

    return backbone_lora_config(load_backbone(backbone), resolve(config))
