"""Errors evocl reports to users: one line, naming the file, field and rule; exit code 2."""

from __future__ import annotations


class EvoclError(Exception):
    """Base of every error evocl raises on purpose."""


class UserError(EvoclError):
    """Bad input from the user (a file, a field, a flag). The CLI prints it as one line, exit 2.

    ``source`` is the file (or "<string>", or a CLI flag), ``field`` the offending field path,
    ``rule`` what was expected. ``str()`` gives ``source: field: rule``.
    """

    def __init__(self, rule: str, *, source: str | None = None, field: str | None = None):
        self.rule = rule
        self.source = source
        self.field = field
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """``source: field: rule`` on one line, at most MAX_LINE characters (the middle of a
        longer one, e.g. a value nested hundreds deep, is replaced by a count)."""
        parts = [str(p) for p in (self.source, self.field) if p]
        return summarise(": ".join(parts + [str(self.rule)]))


#: The longest error line evocl prints; longer ones keep their start and end.
MAX_LINE = 600


def summarise(text: str, limit: int = MAX_LINE) -> str:
    """``text`` on one line and at most ``limit`` characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head, tail = limit * 3 // 5, limit // 3
    return f"{text[:head]} ... [{len(text) - head - tail:,} characters omitted] ... {text[-tail:]}"


class SpaceError(UserError):
    """A search space that does not load or validate, or a configuration that does not fit it."""


class StreamError(UserError):
    """A task stream (spec, data file, split) that cannot be used."""


class BackboneError(UserError):
    """A backbone that cannot be loaded (missing directory, tokenizer mismatch)."""


class RunDirError(UserError):
    """A run directory that cannot be created, resumed or read."""


class UnsafePathError(UserError):
    """A path evocl refuses to use: a symbolic link inside a folder evocl owns (a run
    directory, an output folder), or something other than a regular file (a FIFO, a device)
    where a file is read or written (see ``evocl.safefile``)."""


class EvaluationError(EvoclError):
    """An evaluation failed in a way that is recorded as a failed Result, not raised to users.

    ``transient`` marks failures worth a retry (a dead worker), as opposed to deterministic
    ones (NaN loss, a bad configuration).
    """

    def __init__(self, reason: str, *, transient: bool = False):
        self.reason = reason
        self.transient = transient
        super().__init__(reason)


def failure_reason(exc: BaseException) -> str:
    """The one-line reason a failed evaluation records for ``exc`` (out of memory, a bad
    configuration, an evaluation error's own reason, else the exception's type and first line)."""
    first = (str(exc).splitlines() or [""])[0][:300]
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in first.lower():
        return f"out of memory: {first}"
    if isinstance(exc, EvaluationError):
        return exc.reason
    if isinstance(exc, UserError):
        return f"bad configuration: {first}"
    return f"{type(exc).__name__}: {first}"
