"""The docs' reference pages, generated from the code at build time (never written by hand).

``cli_markdown()`` walks the Typer app (every command, argument and flag, with its type,
default and help); ``options_markdown()`` reads the registries: engines and their
``DEFAULTS``, early-stopping schedulers and theirs, strategies and their ``PARAMS``, the CL
parameters, the evaluator options, backbones and built-in streams. ``TABLES`` are the pieces
a page may embed with a marker line ``<!-- evocl:NAME -->`` (see ``hooks.py``).
Nothing here imports torch, transformers or Ray.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Callable, Iterator

PAGES = {"reference/cli.md": "cli_markdown", "reference/options.md": "options_markdown"}


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (dict, list, tuple, bool)) or isinstance(value, str) and not value:
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


# ---------------------------------------------------------------------------- command line

def cli_root() -> Any:
    """The click command behind the Typer app."""
    import typer

    from evocl.cli import app

    return typer.main.get_command(app)


def iter_commands(group: Any, path: tuple[str, ...] = ("evocl",)) -> Iterator[tuple[str, Any]]:
    """("evocl search", command), ... for every command and sub-command, sorted by path."""
    yield " ".join(path), group
    for name in sorted(getattr(group, "commands", {})):
        yield from iter_commands(group.commands[name], path + (name,))


def is_argument(p: Any) -> bool:
    """A positional argument (not an option), in click's and in typer's own parameter classes."""
    kind = getattr(p, "param_type_name", None)
    return kind == "argument" if kind else "Argument" in type(p).__name__


def _kind(p: Any) -> str:
    t = getattr(p, "type", None)
    if t is not None and getattr(t, "name", None):
        return str(t.name).lower()
    ann = getattr(getattr(p, "type_descriptor", None), "annotation", None)
    text = getattr(ann, "__name__", None) or str(ann)
    text = re.sub(r"typing\.|pathlib\.", "", text)
    return {"str": "text", "Path": "path", "float": "number", "int": "integer",
            "bool": "flag"}.get(text, text)


def _param_row(p: Any) -> str:
    names = ", ".join(f"`{o}`" for o in [*p.opts, *getattr(p, "secondary_opts", [])])
    kind = "flag" if getattr(p, "is_flag", False) else _kind(p)
    if getattr(p, "multiple", False):
        kind += ", repeatable"
    if is_argument(p):
        names = f"`{p.name.upper()}`"
        kind = "argument: " + (_kind(p) if p.nargs != -1 else "one or more")
    if p.required:
        default = "required"
    elif getattr(p, "is_flag", False) and getattr(p, "secondary_opts", None):
        default = ("" if p.default is None else f"`{p.opts[0] if p.default else p.secondary_opts[0]}`")
    elif getattr(p, "is_flag", False) or p.default in (None, [], ()):
        default = ""
    else:
        default = _value(p.default)
    return f"| {names} | {kind} | {default} | {_cell(getattr(p, 'help', '') or '')} |"


def cli_markdown() -> str:
    out = ["# Command line", "",
           "Generated from the Typer app (`evocl/cli.py`) when the site is built: every command,",
           "argument and flag. `evocl COMMAND --help` prints the same.", ""]
    for path, cmd in iter_commands(cli_root()):
        params = [p for p in cmd.params if p.name != "help"]
        is_group = bool(getattr(cmd, "commands", None))
        title = path if path == "evocl" else f"`{path}`"
        out += [f"## {title}", "", _cell(cmd.help or "").strip(), ""]
        if is_group and path != "evocl":
            subs = ", ".join(f"`{path} {n}`" for n in sorted(cmd.commands))
            out += [f"Commands: {subs}.", ""]
        if path == "evocl":
            subs = ", ".join(f"[`{n}`](#evocl-{n})" for n in sorted(cmd.commands))
            out += [f"Commands: {subs}. Options before the command:", ""]
        if params:
            out += ["| argument or flag | kind | default | what |", "|---|---|---|---|"]
            out += [_param_row(p) for p in params]
            out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------------- options

def _defaults_table(defaults: dict[str, Any]) -> list[str]:
    if not defaults:
        return ["No options.", ""]
    return ["| option | default |", "|---|---|",
            *[f"| `{k}` | {_value(v)} |" for k, v in defaults.items()], ""]


def _registry_defaults(registry: Any, intro: str, with_path: bool) -> str:
    out = [intro, ""]
    for name in registry.names():
        where = f" (`{registry.path(name)}`)" if with_path else ""
        out += [f"### `{name}`", "", f"{_cell(registry.summary(name))}{where}.", ""]
        out += _defaults_table(dict(getattr(registry.load(name), "DEFAULTS", {})))
    return "\n".join(out)


def engines_markdown() -> str:
    from evocl.registry import ENGINES

    return _registry_defaults(ENGINES, "Set with `--algorithm NAME` and `--algorithm-option "
                              "KEY=VALUE` (JSON values).", True)


def schedulers_markdown() -> str:
    from evocl.registry import SCHEDULERS

    return _registry_defaults(SCHEDULERS, "Set with `--early-stop NAME` and "
                              "`--early-stop-option KEY=VALUE`.", False)


def _bounds(p: Any) -> str:
    if p.choices:
        return " \\| ".join(f"`{c}`" for c in p.choices)
    if p.kind is bool:
        return "`true` \\| `false`"
    lo = "" if p.low is None else (f"> {p.low:g}" if p.low_open else f">= {p.low:g}")
    hi = "" if p.high is None else f"<= {p.high:g}"
    return ", ".join(b for b in (lo, hi) if b) or "any number"


def _params_table(params: Any) -> list[str]:
    return ["| parameter | default | valid | what |", "|---|---|---|---|",
            *[f"| `{p.name}` | {_value(p.default)} | {_bounds(p)} | {_cell(p.help)} |" for p in params],
            ""]


def strategies_markdown() -> str:
    from evocl.cl.strategies import STRATEGIES

    out = []
    for name in STRATEGIES.names():
        cls = STRATEGIES.load(name)
        switch = f", switched on by `{cls.switch}`" if cls.switch else ""
        out += [f"### `{name}`", "", f"{_cell(STRATEGIES.summary(name))} (`{STRATEGIES.path(name)}`{switch}).", ""]
        out += _params_table(cls.PARAMS)
    return "\n".join(out)


def cl_params_markdown() -> str:
    from evocl.cl.params import ADAPTER, OPTIMISATION, PREFERENCE

    return "\n".join(["Adapter (LoRA placement and size):", "", *_params_table(ADAPTER),
                      "Optimisation (the training loop):", "", *_params_table(OPTIMISATION),
                      "Preference tasks (DPO):", "", *_params_table(PREFERENCE),
                      "Each strategy's parameters: [strategies](#strategies)."])


def _option_help(doc: str) -> dict[str, str]:
    """The ``name  meaning`` lines of ``Options``' docstring, continuation lines joined."""
    out: dict[str, str] = {}
    current = None
    for line in doc.splitlines()[2:]:
        m = re.match(r"    (\w+)\s+(.*)", line)
        if m and not line.startswith("     "):
            current = m.group(1)
            out[current] = m.group(2)
        elif current and line.strip():
            out[current] += " " + line.strip()
    return out


def evaluator_options_markdown() -> str:
    from evocl.cl.names import Options

    helps = _option_help(Options.__doc__ or "")
    rows = [f"| `{f.name}` | {_value(f.default)} | {_cell(helps.get(f.name, ''))} |"
            for f in dataclasses.fields(Options)]
    return "\n".join(["Not searched; set with `-o KEY=VALUE` (JSON values) on `evocl search`.", "",
                      "| option | default | what |", "|---|---|---|", *rows, ""])


def backbones_markdown() -> str:
    from evocl.registry import BACKBONES

    rows = []
    for name in BACKBONES.names():
        kind = getattr(BACKBONES.load(name), "kind", "encoder")
        rows.append(f"| `{name}` | {kind} | {_cell(BACKBONES.summary(name))} |")
    return "\n".join(["| `--backbone` | kind | what |", "|---|---|---|", *rows, "",
                      "Any other value is a local checkpoint directory, a folder holding one "
                      "`.gguf` file, or a `.gguf` file.", ""])


def streams_markdown() -> str:
    from evocl.registry import STREAMS

    rows = []
    for name in STREAMS.names():
        b = STREAMS.load(name)
        n = len(b.task_names or b.tasks or ())
        rows.append(f"| `{name}` | {b.scenario} | {n} | {_cell(STREAMS.summary(name))} |")
    return "\n".join(["| `--stream` | scenario | tasks | what |", "|---|---|---|---|", *rows, "",
                      "Any other value is a stream spec YAML ([task streams](../streams.md)).", ""])


def executors_markdown() -> str:
    from evocl.registry import EXECUTORS

    return "\n".join(["| `--executor` | what |", "|---|---|",
                      *[f"| `{n}` | {_cell(EXECUTORS.summary(n))} |" for n in EXECUTORS.names()],
                      "", "`auto` (the default): `local` for one worker, else `ray`.", ""])


TABLES: dict[str, Callable[[], str]] = {
    "engines": engines_markdown, "schedulers": schedulers_markdown,
    "strategies": strategies_markdown, "cl-parameters": cl_params_markdown,
    "evaluator-options": evaluator_options_markdown, "backbones": backbones_markdown,
    "streams": streams_markdown, "executors": executors_markdown,
}


def options_markdown() -> str:
    sections = [("Engines", "engines"), ("Early stopping", "schedulers"),
                ("Strategies", "strategies"), ("CL parameters", "cl-parameters"),
                ("Evaluator options", "evaluator-options"), ("Backbones", "backbones"),
                ("Streams", "streams"), ("Executors", "executors")]
    out = ["# Options", "",
           "Generated from the registries (`evocl/registry.py`, `evocl/cl/strategies/__init__.py`),",
           "the engines' and schedulers' `DEFAULTS`, the strategies' `PARAMS`, `evocl/cl/params.py`",
           "and `evocl/cl/names.py` when the site is built.", ""]
    for title, key in sections:
        out += [f"## {title}", "", TABLES[key](), ""]
    return "\n".join(out)


def render(page: str) -> str:
    """The Markdown of a generated page (a key of ``PAGES``)."""
    return globals()[PAGES[page]]()


def expand(markdown: str) -> str:
    """``markdown`` with each line ``<!-- evocl:NAME -->`` replaced by ``TABLES[NAME]()``."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in TABLES:
            raise KeyError(f"unknown generated table {name!r}; known: {sorted(TABLES)}")
        return TABLES[name]()
    return re.sub(r"^<!-- evocl:([\w-]+) -->$", sub, markdown, flags=re.M)


# ------------------------------------------------------------------------------ architecture

#: helpers every part may use; left out of the diagram so its arrows show the design
UTILITIES = ("errors", "safefile", "yamlsafe", "registry", "testing", "progress", "ui", "__init__")


def import_graph(package_dir: Any = None) -> dict[str, set[str]]:
    """module -> evocl modules it imports (at module level or inside a function), by AST."""
    import ast
    from pathlib import Path

    base = Path(package_dir) if package_dir else Path(__file__).resolve().parents[2] / "evocl"
    graph: dict[str, set[str]] = {}
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(base.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        deps: set[str] = set()
        pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("evocl")}
            elif isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    mod = ".".join(up + ([mod] if mod else []))
                if mod.startswith("evocl"):
                    deps.add(mod)
                    deps |= {f"{mod}.{a.name}" for a in node.names}
        graph[name] = deps
    known = set(graph)
    return {m: {d for d in ds if d in known and d != m} for m, ds in graph.items()}


def import_cycles(graph: dict[str, set[str]], within: str = "") -> list[list[str]]:
    """Strongly connected groups of more than one module (import circles), modules under
    ``within`` only; a package importing its own modules is not a circle."""
    nodes = [m for m in graph if m.startswith(within)]
    edges = {m: {d for d in graph[m] if d in nodes and not d.startswith(m + ".")} for m in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in nodes:
        if v not in index:
            visit(v)
    return sorted(out)


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def module_graph_markdown() -> str:
    """A mermaid diagram of which part of evocl imports which, read from the source."""
    graph = import_graph()
    edges = sorted({(_part(m), _part(d)) for m, ds in graph.items() for d in ds
                    if _part(m) != _part(d) and _part(m) not in UTILITIES
                    and _part(d) not in UTILITIES})
    lines = ["```mermaid", "graph LR"]
    lines += [f"  {a} --> {b}" for a, b in edges]
    lines += ["```", "",
              f"Generated from the imports in `evocl/` at build time (an arrow points to what a "
              f"part imports, lazily inside a function included); the helpers every part may use "
              f"({', '.join(f'`{u}`' for u in UTILITIES if u != '__init__')}) are left out.", ""]
    return "\n".join(lines)


TABLES["module-graph"] = module_graph_markdown
