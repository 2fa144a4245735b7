"""Built-in streams over real offline corpora (filled in below)."""

from __future__ import annotations

BUILTINS: list = []
