"""mkdocs hooks: add the generated reference pages and expand ``<!-- evocl:NAME -->`` markers.

Named in mkdocs.yml (``hooks:``); the content comes from ``reference.py`` beside this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for p in (str(HERE), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)

import reference  # noqa: E402
from mkdocs.structure.files import File  # noqa: E402


def on_files(files, config):  # noqa: ANN001, ANN201 - the mkdocs hook signature
    for page in reference.PAGES:
        files.append(File.generated(config, page, content=reference.render(page)))
    return files


def on_page_markdown(markdown, page, config, files):  # noqa: ANN001, ANN201
    return reference.expand(markdown)
