"""Opening files so that a hostile path can neither block evocl nor lead it out of a folder.

Two kinds of paths:

- **a path someone named** (``--space``, a stream's spec or data file, ``--out``, the run
  directory itself): a symbolic link there is that person's choice and is followed, but only
  a regular file is read or written: a FIFO would block evocl forever, a device would stream
  without end (:func:`open_fd`, :func:`read_bytes`, :func:`atomic_write`);
- **an entry of a folder evocl owns** (the files of a run directory, of an output folder it
  writes), reached through a :class:`Box`: each step below the folder is opened from its
  parent's descriptor with ``O_NOFOLLOW``, so no symbolic link below the folder is ever
  followed (nothing is read, written, replaced or deleted through one), only regular files and
  real folders are used, and nothing is written outside it.

Every open is ``O_NONBLOCK`` and checked with ``fstat`` after it, so a FIFO or a device that
takes a file's place between a check and the open is refused as well, and never blocks. A
refusal is one ``UnsafePathError`` line naming the path and the rule.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator

from evocl.errors import UnsafePathError

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link"),
          (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
_MODES = {"rb": os.O_RDONLY, "ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT, "r+b": os.O_RDWR}


def kind(mode: int) -> str:
    """What an ``st_mode`` is, in words ("a FIFO (named pipe)", "a regular file" ...)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def refusal(path: str | os.PathLike[str], mode: int, inside: str | None = None,
            want: str = "a regular file") -> UnsafePathError:
    """The one line for ``path`` being of the kind ``mode`` where ``want`` was needed;
    ``inside``: the folder evocl owns that holds it ("run directory"), if any."""
    if stat.S_ISLNK(mode):
        where = f"inside a {inside}" if inside else "where it writes a file"
        return UnsafePathError(f"is a symbolic link; evocl never follows a link {where} (a "
                               "closed box: nothing outside it is read or written); put the "
                               "real file there or remove the link", source=os.fspath(path))
    rule = ("evocl reads and writes only regular files" if want == "a regular file"
            else f"expected {want}")
    return UnsafePathError(f"is {kind(mode)}, not {want}; {rule}", source=os.fspath(path))


def open_fd(path: str | os.PathLike[str], flags: int = os.O_RDONLY, mode: int = 0o666, *,
            follow: bool = True, dir_fd: int | None = None,
            shown: str | os.PathLike[str] | None = None, inside: str | None = None) -> int:
    """A descriptor of the regular file ``path`` (relative to ``dir_fd`` when given), opened
    without blocking; UnsafePathError when it is anything else, or a link and not ``follow``.
    ``shown``: the path named in the error. Other OSErrors (FileNotFoundError ...) pass."""
    shown = path if shown is None else shown
    flags |= os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise refusal(shown, stat.S_IFLNK, inside) from None
        if exc.errno == errno.ENXIO:  # a FIFO or socket opened for writing, nobody reading
            raise refusal(shown, stat.S_IFIFO, inside) from None
        if exc.errno == errno.EISDIR:
            raise refusal(shown, stat.S_IFDIR, inside) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise refusal(shown, st.st_mode, inside)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(path: str | os.PathLike[str], mode: str = "rb", **kw: object) -> BinaryIO:
    """:func:`open_fd` as a binary file object (``rb``, ``ab`` unbuffered, ``r+b``)."""
    fd = open_fd(path, _MODES[mode], **kw)  # type: ignore[arg-type]
    return os.fdopen(fd, mode, buffering=0 if mode == "ab" else -1)


def read_bytes(path: str | os.PathLike[str], limit: int | None = None, **kw: object) -> bytes:
    """The bytes of a regular file (at most ``limit`` + 1 of them, so the caller can tell a
    file over its limit); symbolic links are followed unless ``follow=False``."""
    with open_file(path, "rb", **kw) as f:
        return f.read() if limit is None else f.read(limit + 1)


def _write_at(dir_fd: int, name: str, data: bytes, shown: Path, inside: str | None) -> None:
    """Replace the entry ``name`` of the folder ``dir_fd`` with ``data`` atomically (temp file
    beside it, fsync, rename, fsync the folder); refused when ``name`` is not a regular file."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise refusal(shown, st.st_mode, inside)
    while True:
        tmp = f".{name[:200]}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o666, dir_fd=dir_fd)  # 0o666 less the umask, as open() gives
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        raise
    try:
        os.fsync(dir_fd)
    except OSError:
        pass


def _open_dir(path: str | os.PathLike[str], dir_fd: int | None = None, *, follow: bool = True,
              shown: str | os.PathLike[str] | None = None, inside: str | None = None) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        return os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        st = os.stat(path, dir_fd=dir_fd, follow_symlinks=follow)
        raise refusal(path if shown is None else shown, st.st_mode, inside,
                      want="a directory") from None


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace the named ``path`` with ``data`` atomically; its folder is followed (a path
    someone named), the file itself must be a regular file or absent."""
    path = Path(path)
    dfd = _open_dir(path.parent)
    try:
        _write_at(dfd, path.name, data, path, None)
    finally:
        os.close(dfd)


class Box:
    """A folder evocl owns (``what``: "run directory", "output folder"). ``root`` is followed,
    as someone named it; every entry below it, given as a relative path ``a/b``, is reached
    from the root's descriptor without following a link, and must be a regular file (or a
    real directory on the way)."""

    def __init__(self, root: str | os.PathLike[str], what: str = "run directory"):
        self.root = Path(root)
        self.what = what

    def path(self, rel: str = "") -> Path:
        return self.root / rel if rel else self.root

    # -- walking ---------------------------------------------------------------------------
    def _parts(self, rel: str) -> list[str]:
        parts = [p for p in PurePosixPath(rel).parts if p != "."]
        if PurePosixPath(rel).is_absolute() or ".." in parts:
            raise UnsafePathError(f"must be a path inside the {self.what}", source=rel)
        return parts

    def _dir_fd(self, parts: list[str], create: bool = False) -> int:
        """Descriptor of the directory ``root/parts`` (created when ``create``)."""
        if create:
            os.makedirs(self.root, exist_ok=True)
        fd = _open_dir(self.root)
        try:
            for i, name in enumerate(parts):
                if create:
                    try:
                        os.mkdir(name, 0o777, dir_fd=fd)
                    except FileExistsError:
                        pass
                nfd = _open_dir(name, fd, follow=False, shown=self.root.joinpath(*parts[:i + 1]),
                                inside=self.what)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _split(self, rel: str) -> tuple[list[str], str]:
        parts = self._parts(rel)
        if not parts:
            raise UnsafePathError(f"names the {self.what} itself, not a file in it", source=rel)
        return parts[:-1], parts[-1]

    # -- files -----------------------------------------------------------------------------
    def fd(self, rel: str, flags: int = os.O_RDONLY, mode: int = 0o666) -> int:
        """:func:`open_fd` of an entry, no link followed on the way or at the end."""
        parents, name = self._split(rel)
        dfd = self._dir_fd(parents)
        try:
            return open_fd(name, flags, mode, follow=False, dir_fd=dfd, shown=self.path(rel),
                           inside=self.what)
        finally:
            os.close(dfd)

    def open(self, rel: str, mode: str = "rb") -> BinaryIO:
        """An entry as a binary file object: ``rb``, ``ab`` (created; unbuffered), ``r+b``."""
        return os.fdopen(self.fd(rel, _MODES[mode]), mode, buffering=0 if mode == "ab" else -1)

    def read_bytes(self, rel: str, *, limit: int | None = None,
                   missing_ok: bool = False) -> bytes | None:
        """An entry's bytes (None when it is missing and ``missing_ok``); see :func:`read_bytes`."""
        try:
            f = self.open(rel)
        except FileNotFoundError:
            if missing_ok:
                return None
            raise
        with f:
            return f.read() if limit is None else f.read(limit + 1)

    def write_atomic(self, rel: str, data: bytes) -> None:
        """Replace an entry atomically (its folders must exist; see :meth:`makedirs`)."""
        parents, name = self._split(rel)
        dfd = self._dir_fd(parents)
        try:
            _write_at(dfd, name, data, self.path(rel), self.what)
        finally:
            os.close(dfd)

    def lstat(self, rel: str) -> os.stat_result | None:
        """The entry's own stat (a link is not followed); None when it or a folder on the way
        is missing."""
        parents, name = self._split(rel)
        try:
            dfd = self._dir_fd(parents)
        except FileNotFoundError:
            return None
        try:
            return os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        finally:
            os.close(dfd)

    def check(self, rel: str, want: str = "file") -> bool:
        """Whether the entry exists; UnsafePathError when it is a link or not of the kind
        ``want`` ("file" or "dir")."""
        st = self.lstat(rel)
        if st is None:
            return False
        ok = stat.S_ISREG(st.st_mode) if want == "file" else stat.S_ISDIR(st.st_mode)
        if not ok:
            raise refusal(self.path(rel), st.st_mode, self.what,
                          "a regular file" if want == "file" else "a directory")
        return True

    def unlink(self, rel: str) -> bool:
        """Delete a regular file entry; False when it is missing (a link or anything else is
        refused)."""
        if not self.check(rel):
            return False
        parents, name = self._split(rel)
        dfd = self._dir_fd(parents)
        try:
            os.unlink(name, dir_fd=dfd)
        except FileNotFoundError:
            return False
        finally:
            os.close(dfd)
        return True

    # -- folders ---------------------------------------------------------------------------
    def makedirs(self, rel: str = "") -> None:
        """Create ``rel`` and the folders on the way (the root too) where missing."""
        os.close(self._dir_fd(self._parts(rel), create=True))

    def listdir(self, rel: str = "") -> list[str]:
        """Names in the folder ``rel`` (sorted; [] when it is missing)."""
        try:
            dfd = self._dir_fd(self._parts(rel))
        except FileNotFoundError:
            return []
        try:
            return sorted(os.listdir(dfd))
        finally:
            os.close(dfd)

    def rmdir(self, rel: str = "") -> bool:
        """Remove an empty folder (the root when ``rel`` is empty); False when it is not."""
        parts = self._parts(rel)
        try:
            if not parts:
                os.rmdir(self.root)
                return True
            dfd = self._dir_fd(parts[:-1])
            try:
                os.rmdir(parts[-1], dir_fd=dfd)
            finally:
                os.close(dfd)
        except OSError:
            return False
        return True

    def fsync(self, rel: str = "") -> None:
        """Make new names in the folder ``rel`` durable (no-op where it cannot be opened)."""
        try:
            dfd = self._dir_fd(self._parts(rel))
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)


@contextmanager
def entry_lock(path: str | os.PathLike[str]) -> Iterator[bool]:
    """Hold an exclusive ``fcntl.flock`` on the lock file ``path`` (created beside a cache
    entry) while the block runs, waiting for another process that holds it: two workers never
    build or convert one cache entry at once; the second finds it built. Yields whether the
    lock is held: a lock file that cannot be made (a read-only cache, a link or a FIFO in its
    place) costs only that guarantee, never the evaluation. The kernel drops a flock when
    its process dies, so a killed builder never blocks the next."""
    fd = None
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fd = open_fd(path, os.O_RDWR | os.O_CREAT, 0o644, follow=False)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except (OSError, UnsafePathError):
        if fd is not None:
            os.close(fd)
        fd = None
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)  # closing drops the flock
