"""Where evocl writes what a user asked for with ``--out``: `evocl report`, `compare`, `export`
and `train`.

evocl writes into a folder that is new, empty, or one it wrote before, and recognises its own
by a manifest, ``.evocl-manifest.json``, listing every file it wrote there. It refuses a
non-empty folder without that manifest, and never replaces a file the manifest does not list,
unless ``force`` (``--force``). Every file goes through the folder's box (``evocl.safefile``):
no link inside the folder is followed, so nothing lands outside it; the folder itself may be
a link its user named. A folder inside a run directory (``RUN/report``, ``RUN/exports/x``) is
reached from the run directory's box, so no link on the way there is followed either.

A single file named by ``--out`` (``export --out best.yaml``) follows the same rule through
:func:`write_file`: it may replace only a file evocl recognises as its own (``recognise``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from evocl.errors import UserError
from evocl.safefile import Box, atomic_write, read_bytes

MANIFEST = ".evocl-manifest.json"
MANIFEST_FORMAT = 1
_MANIFEST_LIMIT = 1024 * 1024


def path_inside(path: Path, run_dir: str | os.PathLike[str] | None) -> str | None:
    """``path`` relative to ``run_dir`` when it lies in it as written (links not resolved)."""
    if run_dir is None:
        return None
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(run_dir))
    return None if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def _locate(path: Path, run_dir: str | os.PathLike[str] | None) -> tuple[Box, str]:
    rel = path_inside(path, run_dir)
    if rel is not None:
        return Box(run_dir), "" if rel == os.curdir else PurePosixPath(rel).as_posix()
    return Box(path, "output folder"), ""


class OutputFolder:
    """An output folder opened for writing by ``command`` (see the module's rule)."""

    def __init__(self, path: str | os.PathLike[str], command: str, *, force: bool = False,
                 run_dir: str | os.PathLike[str] | None = None, own_ok: bool = True):
        """``own_ok=False``: refuse a non-empty folder even when evocl wrote it (`train`:
        trained adapters are not overwritten without --force)."""
        self.path = Path(path)
        self.command = command
        self.force = force
        self.box, self.base = _locate(self.path, run_dir)
        if self.base:
            exists = self.box.check(self.base, "dir")
        else:
            if self.path.exists() and not self.path.is_dir():
                raise UserError("exists and is not a folder; choose another --out",
                                source=str(self.path), field="--out")
            exists = self.path.exists()
        self.created = not exists
        self.listed = self._read_manifest() if exists else None
        if exists and not force and (self.listed is None or not own_ok):
            others = [n for n in self.box.listdir(self.base) if n != MANIFEST]
            if others and self.listed is None:
                shown = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "")
                raise UserError(f"holds {len(others)} file(s) evocl did not write ({shown}); "
                                "evocl writes only into a new or empty folder, or one it wrote "
                                f"before (with its {MANIFEST}); choose another --out or add "
                                "--force", source=str(self.path), field="--out")
            if others:
                raise UserError(f"is not empty, and `evocl {command}` never overwrites an "
                                "earlier output: choose another --out or add --force",
                                source=str(self.path), field="--out")
        self._had_manifest = self.listed is not None
        self.listed = set(self.listed or ())
        self.written: list[str] = []   # created with the first file written

    def _rel(self, name: str) -> str:
        return f"{self.base}/{name}" if self.base else name

    def _read_manifest(self) -> set[str] | None:
        data = self.box.read_bytes(self._rel(MANIFEST), limit=_MANIFEST_LIMIT, missing_ok=True)
        if data is None or len(data) > _MANIFEST_LIMIT:
            return None
        try:
            doc = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError):
            return None
        files = doc.get("files") if isinstance(doc, dict) else None
        if doc.get("evocl_manifest") != MANIFEST_FORMAT or not isinstance(files, list) or \
                not all(isinstance(f, str) and _relative(f) for f in files):
            return None
        return set(files)

    def _write_manifest(self) -> None:
        from evocl import __version__

        doc = {"evocl_manifest": MANIFEST_FORMAT, "written_by": f"evocl {self.command}",
               "evocl_version": __version__, "files": sorted(self.listed)}
        self.box.write_atomic(self._rel(MANIFEST),
                              (json.dumps(doc, indent=1) + "\n").encode("utf-8"))

    def write(self, name: str, data: bytes | str) -> Path:
        """Write the file ``name`` (a relative path; folders made as needed); its path."""
        if not _relative(name) or name == MANIFEST:
            raise UserError(f"not a file name evocl writes: {name!r:.80}", field="--out")
        rel = self._rel(name)
        if name not in self.listed and not self.force and self.box.lstat(rel) is not None:
            raise UserError(f"would replace {name}, which evocl did not write there (it is not "
                            f"in {MANIFEST}); choose another --out or add --force",
                            source=str(self.path), field="--out")
        parent = PurePosixPath(rel).parent.as_posix()
        try:
            self.box.makedirs("" if parent == "." else parent)
            if name not in self.listed:
                self.listed.add(name)
                self._write_manifest()
            self.box.write_atomic(rel, data.encode("utf-8") if isinstance(data, str) else data)
        except OSError as exc:
            raise UserError(f"cannot write {name} ({exc.strerror or exc})",
                            source=str(self.path), field="--out") from None
        self.written.append(name)
        return self.path / name

    def add_tree(self, folder: str | os.PathLike[str], prefix: str = "") -> list[Path]:
        """Write every regular file under ``folder`` (a staging folder of this process, see
        :func:`staging`) as ``prefix/<its relative path>``."""
        out = []
        root = Path(folder)
        for dirpath, _, files in os.walk(root):
            for f in sorted(files):
                src = Path(dirpath) / f
                if src.is_symlink() or not src.is_file():
                    continue
                rel = src.relative_to(root).as_posix()
                out.append(self.write(f"{prefix}/{rel}" if prefix else rel, src.read_bytes()))
        return out

    def remove_written(self) -> None:
        """Undo this session's writes (a failed `evocl train`): its files, their names in the
        manifest, and the folder when this session created it and nothing else is left."""
        for name in self.written:
            try:
                self.box.unlink(self._rel(name))
            except (OSError, UserError):
                pass
            self.listed.discard(name)
        self.written = []
        if self.listed or self._had_manifest:
            self._write_manifest()
            return
        try:
            self.box.unlink(self._rel(MANIFEST))
        except (OSError, UserError):
            pass
        if self.created:  # the folders this session made, when nothing else is in them
            for dirpath, dirs, _ in os.walk(self.path, topdown=False):
                for d in dirs:
                    try:
                        os.rmdir(Path(dirpath) / d)
                    except OSError:
                        pass
            self.box.rmdir(self.base)


def _relative(name: str) -> bool:
    p = PurePosixPath(name)
    return bool(name) and not p.is_absolute() and ".." not in p.parts and "\\" not in name


@contextmanager
def staging(prefix: str = "evocl-out-") -> Iterator[Path]:
    """A private temporary folder for libraries that write by path (matplotlib, PEFT); its
    files then go into an output folder with :meth:`OutputFolder.add_tree`."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        yield Path(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_file(path: str | os.PathLike[str], data: bytes, *, force: bool = False,
               recognise: Callable[[bytes], bool] | None = None,
               run_dir: str | os.PathLike[str] | None = None) -> Path:
    """Write one file named by ``--out``: created, or replacing a file ``recognise`` accepts
    as evocl's own (``force``: any regular file). Never through a link; inside a run directory
    reached from its box."""
    path = Path(path)
    rel = path_inside(path, run_dir)
    box = Box(run_dir) if rel is not None else None
    try:
        if box is not None:
            exists = box.check(rel)
            old = box.read_bytes(rel, limit=_MANIFEST_LIMIT * 16) if exists else None
        else:
            exists = path.exists() or path.is_symlink()
            old = read_bytes(path, _MANIFEST_LIMIT * 16, follow=False) if exists else None
    except OSError as exc:
        raise UserError(f"cannot read ({exc.strerror or exc})", source=str(path),
                        field="--out") from None
    if old is not None and not force and not (recognise is not None and recognise(old)):
        raise UserError("exists and is not a file evocl wrote; choose another --out or add "
                        "--force", source=str(path), field="--out")
    try:
        if box is not None:
            parent = PurePosixPath(rel).parent.as_posix()
            if parent != ".":
                box.makedirs(parent)
            box.write_atomic(PurePosixPath(rel).as_posix(), data)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
    except OSError as exc:
        raise UserError(f"cannot write ({exc.strerror or exc})", source=str(path),
                        field="--out") from None
    return path
