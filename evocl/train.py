"""`evocl train`: one exported configuration on the full stream; adapters, head and metrics saved.

Proof that an export is usable: it reads the YAML/JSON that `evocl export --format yaml|json`
writes, trains with the same evaluator as the search (full validation and test splits, no
caps), and writes into OUT:

    adapter/adapter_model.safetensors, adapter/adapter_config.json   the LoRA adapters (PEFT)
    head.safetensors                                                  the linear head (encoders)
    labels.json                                                       class names of the head
    metrics.json                                                      objectives, accuracy matrix, test accuracy
    samples.json                                                      causal LMs: answers to held-out
                                                                      prompts before training, after
                                                                      their own task, at the end; and
                                                                      to retention prompts before / after

A causal LM's adapter loads with ``PeftModel.from_pretrained(base_model, OUT/adapter)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from evocl.errors import EvaluationError, UserError
from evocl.storage.atomic import atomic_write_json
from evocl.yamlsafe import read_yaml


def read_export(path: str | os.PathLike) -> dict[str, Any]:
    """An evocl export document (YAML or JSON); UserError naming the file and field."""
    path = Path(path)
    if not path.is_file():
        raise UserError("no such file", source=str(path))
    doc = read_yaml(path, what="evocl export (YAML or JSON)")
    if not isinstance(doc, dict):
        raise UserError("expected a mapping (an `evocl export` document)", source=str(path))
    if "config" not in doc or not isinstance(doc["config"], dict):
        if "evocl_export" not in doc and all(isinstance(k, str) for k in doc):
            return {"config": doc}  # a bare configuration mapping is accepted too
        raise UserError("missing mapping `config`", source=str(path), field="config")
    return doc


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError("exists and is not an empty folder; nothing is overwritten", source=str(out),
                        field="--out")


def _field(doc: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        raise UserError(f"must be a mapping, got {type(value).__name__}", source=source, field=key)
    return value


def train_exported(config: str | os.PathLike, out: str | os.PathLike, *, stream: str | None = None,
                   backbone: str | None = None, device: str = "auto", seed: int | None = None) -> dict[str, Any]:
    """Train the exported configuration; return the headline metrics (acc, forgetting, bwt,
    test_acc_mean). Stream, backbone and seed default to the export's provenance.

    ``out`` is created only once the export, backbone and stream have loaded, and is removed
    again (with what was written into it) when training fails: a failed train leaves nothing.
    """
    from safetensors.torch import save_file

    from evocl.cl import evaluate, load_backbone
    from evocl.cl.names import Options
    from evocl.streams import load_stream

    src = str(config)
    doc = read_export(config)
    prov = _field(doc, "provenance", src)
    options = _field(doc, "evaluator_options", src)
    try:
        opts = Options.from_mapping({**options, "max_eval_per_task": None,
                                     "max_test_per_task": None})
    except UserError as e:
        raise UserError(e.rule, source=src, field=f"evaluator_options.{e.field}") from None
    stream_name = stream or prov.get("stream") or "default"
    backbone_name = backbone or prov.get("backbone") or "minilm"
    for name, value in (("provenance.stream", stream_name), ("provenance.backbone", backbone_name)):
        if not isinstance(value, str):
            raise UserError(f"must be a string, got {type(value).__name__}", source=src, field=name)
    train_seed = seed if seed is not None else _field(doc, "candidate", src).get("seed", 0)
    if isinstance(train_seed, bool) or not isinstance(train_seed, int) or not 0 <= train_seed < 2**63:
        raise UserError(f"must be an int in [0, 2**63), got {train_seed!r:.40}", source=src,
                        field="candidate.seed")
    out_dir = Path(out)
    _check_out(out_dir)

    bk = load_backbone(backbone_name)
    st = load_stream(stream_name, seed=opts.stream_seed)

    causal = getattr(bk, "kind", "encoder") == "causal_lm"
    recorder = None
    if causal:
        from evocl.cl.evaluation import resolve_device
        from evocl.cl.samples import SampleRecorder
        from evocl.streams.retention import apply_options

        st = apply_options(st, task_metric=opts.task_metric, retention=opts.retention,
                           retention_metric=opts.retention_metric)
        recorder = SampleRecorder(st, bk.tokenizer, st.n_tasks, resolve_device(device))

    def save(model: Any) -> None:
        if causal:
            model.lm.save_pretrained(str(out_dir / "adapter"))
            return
        model.encoder.save_pretrained(str(out_dir / "adapter"))
        head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
        save_file(head, str(out_dir / "head.safetensors"))

    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        try:
            result = evaluate(doc["config"], st, bk, train_seed, device=device,
                              options=opts.__class__.from_mapping(
                                  {**opts.to_dict(), "task_metric": None, "retention": None,
                                   "retention_metric": None}),
                              on_trained=save, on_task_model=recorder)
        except EvaluationError as exc:
            raise UserError(f"training failed: {exc.reason}", source=src) from None
        if causal:
            atomic_write_json(out_dir / "samples.json", recorder.to_json())  # type: ignore[union-attr]
        else:
            atomic_write_json(out_dir / "labels.json", {"class_names": list(st.class_names),
                                                        "scenario": st.scenario})
        record = {"config": doc["config"], "stream": stream_name,
                  "stream_fingerprint": st.fingerprint, "backbone": backbone_name,
                  "seed": train_seed, **result.to_dict()}
        atomic_write_json(out_dir / "metrics.json", record, allow_nan=True)
    except BaseException:
        _remove_output(out_dir, created)
        raise
    o = result.objectives
    return {"acc": o["acc"], "forgetting": o["forgetting"], "bwt": o["bwt"],
            "test_acc_mean": result.metrics["test_acc"]["mean"],
            **{k: o[k] for k in ("perplexity", "retention", "retention_drop") if k in o}}


def _remove_output(out_dir: Path, created: bool) -> None:
    """Undo a failed train: the folder was empty (or absent) before, so all in it is ours."""
    import shutil

    if created:
        shutil.rmtree(out_dir, ignore_errors=True)
        return
    for child in out_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
