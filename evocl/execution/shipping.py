"""Ship a user's stream spec and its files to every Ray node, and check what each node sees.

A stream spec (``stream: my_stream.yaml``) names data files on the driver's machine; a
remote node has evocl and its Python dependencies, not those files. :func:`stage` copies the
spec and the files it names (``source.path``, ``retention`` / ``retention.source.path``) into
a content-addressed folder (``<temp>/evocl-ship/<sha256 of names and bytes>/``; the spec is
rewritten to point at the copies); the Ray executor hands that folder to Ray as the workers'
``runtime_env`` ``working_dir`` (Ray uploads it once to the cluster's object store, and each
node unpacks it before its workers start), and the target's ``stream`` becomes the spec's path
inside it. The search space never travels: candidates carry their configurations.

Each worker reports the fingerprint of the stream it built; one that differs from the run's
(a node that sees other data) refuses the search, and so does a worker whose target could not
be imported for a missing package, each with one line naming the node.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping

import yaml

from evocl.errors import UserError

SHIP_DIR = "evocl-ship"
SPEC_NAME = "stream.yaml"
#: Ray refuses a working_dir above this (its own limit is 500 MiB; data this large belongs
#: on the nodes or in a shared file system)
MAX_BYTES = 256 * 1024 * 1024


def is_spec(stream: Any) -> bool:
    """Whether a ``stream`` argument names a YAML spec file here (not a built-in stream)."""
    return isinstance(stream, (str, os.PathLike)) and str(stream).endswith((".yaml", ".yml")) \
        and Path(stream).is_file()


def _files(spec: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """(key path, file path) of every local file the spec names."""
    out = []
    src = spec.get("source")
    if isinstance(src, str) and not src.startswith("hf:"):
        out.append((("source",), src))
    elif isinstance(src, Mapping) and isinstance(src.get("path"), str):
        out.append((("source", "path"), src["path"]))
    ret = spec.get("retention")
    if isinstance(ret, str) and ret not in ("default", "none") and not ret.startswith("hf:"):
        out.append((("retention",), ret))
    elif isinstance(ret, Mapping):
        rsrc = ret.get("source")
        if isinstance(rsrc, str) and not rsrc.startswith("hf:"):
            out.append((("retention", "source"), rsrc))
        elif isinstance(rsrc, Mapping) and isinstance(rsrc.get("path"), str):
            out.append((("retention", "source", "path"), rsrc["path"]))
    return out


def _set(spec: dict[str, Any], keys: tuple[str, ...], value: str) -> None:
    node = spec
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value


def stage(spec_path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
          ) -> Path:
    """Copy the spec and its files into a content-addressed folder; returns the folder (the
    spec inside it is ``SPEC_NAME``). The same content gives the same folder."""
    from evocl.streams.spec import read_spec
    spec_path = Path(spec_path).resolve()
    spec = dict(read_spec(spec_path))
    payload: dict[str, bytes] = {}
    for i, (keys, name) in enumerate(_files(spec)):
        path = (spec_path.parent / name).resolve()
        if path.is_dir():  # hf_disk: a saved dataset folder
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                payload[f"data/{i}/{path.name}/{f.relative_to(path).as_posix()}"] = f.read_bytes()
            staged = f"data/{i}/{path.name}"
        else:
            if not path.is_file():
                raise UserError(f"names {name!r}, which is not a file here; a spec shipped to "
                                "the Ray nodes needs its files", source=str(spec_path),
                                field=".".join(keys))
            staged = f"data/{i}/{re.sub(r'[^A-Za-z0-9._-]', '_', path.name)}"
            payload[staged] = path.read_bytes()
        _set(spec, keys, staged)
    payload[SPEC_NAME] = yaml.safe_dump(spec, sort_keys=True).encode()
    size = sum(len(b) for b in payload.values())
    if size > MAX_BYTES:
        raise UserError(f"its files are {size / 2**20:.0f} MiB, more than the {MAX_BYTES >> 20} "
                        "MiB evocl ships to Ray nodes; put them on every node (or a shared "
                        "file system) and name that path", source=str(spec_path), field="stream")
    digest = hashlib.sha256()
    for name in sorted(payload):
        digest.update(name.encode() + b"\0" + hashlib.sha256(payload[name]).digest())
    base = Path(root) if root is not None else Path(tempfile.gettempdir()) / SHIP_DIR
    out = base / digest.hexdigest()[:32]
    if not (out / SPEC_NAME).is_file():
        tmp = Path(tempfile.mkdtemp(prefix=".staging-", dir=_mkdir(base)))
        for name, data in payload.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(data)
        try:
            os.replace(tmp, out)
        except OSError:  # staged meanwhile by another search: same content
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def target_fingerprint(target: Any) -> str | None:
    """The fingerprint of the stream a built target holds (CLEvaluator and the testing
    targets), None for a target without a stream."""
    data = getattr(target, "data", None)
    fp = getattr(data, "fingerprint", None) or getattr(target, "stream_fingerprint", None)
    return str(fp) if fp else None


def check_node(info: Mapping[str, Any], expected: str | None) -> None:
    """One worker's report (``_Worker.where``): UserError naming the node for a missing
    package or a stream that is not the run's."""
    where = f"Ray node {info.get('node_ip')} ({str(info.get('node_id'))[:12]})"
    if info.get("missing"):
        raise UserError(f"{where} lacks the Python package {info['missing']!r} "
                        f"({info.get('error', '')[:200]}); install it on that node",
                        field="ray_address")
    fp = info.get("fingerprint")
    if expected and fp and fp != expected:
        raise UserError(f"{where} sees another stream (fingerprint {fp[:16]}, the run's is "
                        f"{expected[:16]}); every node must read the same data", field="stream")
