"""`evocl train`: one exported configuration on the full stream; adapters, head and metrics saved.

Proof that an export is usable: it reads the YAML/JSON that `evocl export --format yaml|json`
writes, trains with the same evaluator as the search (full validation and test splits, no
caps), and writes into OUT:

    adapter/adapter_model.safetensors, adapter/adapter_config.json   the LoRA adapters (PEFT)
    head.safetensors                                                  the linear head
    labels.json                                                       class names of the head
    metrics.json                                                      objectives, accuracy matrix, test accuracy
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from evocl.errors import EvaluationError, UserError
from evocl.storage.atomic import atomic_write_json


def read_export(path: str | os.PathLike) -> dict[str, Any]:
    """An evocl export document (YAML or JSON); UserError naming the file and field."""
    path = Path(path)
    if not path.is_file():
        raise UserError("no such file", source=str(path))
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise UserError(f"{where}not valid YAML/JSON", source=str(path)) from None
    if not isinstance(doc, dict):
        raise UserError("expected a mapping (an `evocl export` document)", source=str(path))
    if "config" not in doc or not isinstance(doc["config"], dict):
        if "evocl_export" not in doc and all(isinstance(k, str) for k in doc):
            return {"config": doc}  # a bare configuration mapping is accepted too
        raise UserError("missing mapping `config`", source=str(path), field="config")
    return doc


def _out_dir(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError("exists and is not an empty folder; nothing is overwritten", source=str(out),
                        field="--out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def train_exported(config: str | os.PathLike, out: str | os.PathLike, *, stream: str | None = None,
                   backbone: str | None = None, device: str = "auto", seed: int | None = None) -> dict[str, Any]:
    """Train the exported configuration; return the headline metrics (acc, forgetting, bwt,
    test_acc_mean). Stream, backbone and seed default to the export's provenance."""
    from safetensors.torch import save_file

    from evocl.cl import evaluate, load_backbone
    from evocl.streams import load_stream

    doc = read_export(config)
    prov = doc.get("provenance", {}) or {}
    options = dict(doc.get("evaluator_options", {}) or {})
    stream_name = stream or prov.get("stream") or "default"
    backbone_name = backbone or prov.get("backbone") or "minilm"
    train_seed = int(seed if seed is not None else (doc.get("candidate", {}) or {}).get("seed", 0))
    out_dir = _out_dir(Path(out))

    bk = load_backbone(backbone_name)
    st = load_stream(stream_name, seed=int(options.get("stream_seed", 0)))

    def save(model: Any) -> None:
        model.encoder.save_pretrained(str(out_dir / "adapter"))
        head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
        save_file(head, str(out_dir / "head.safetensors"))

    try:
        result = evaluate(doc["config"], st, bk, train_seed, device=device,
                          max_length=int(options.get("max_length", 64)), max_eval_per_task=None,
                          max_test_per_task=None, on_trained=save)
    except EvaluationError as exc:
        raise UserError(f"training failed: {exc.reason}", source=str(config)) from None
    atomic_write_json(out_dir / "labels.json", {"class_names": list(st.class_names), "scenario": st.scenario})
    record = {"config": doc["config"], "stream": stream_name, "stream_fingerprint": st.fingerprint,
              "backbone": backbone_name, "seed": train_seed, **result.to_dict()}
    atomic_write_json(out_dir / "metrics.json", record, allow_nan=True)
    o = result.objectives
    return {"acc": o["acc"], "forgetting": o["forgetting"], "bwt": o["bwt"],
            "test_acc_mean": result.metrics["test_acc"]["mean"]}
