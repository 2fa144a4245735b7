"""The documentation site cannot drift from the code.

- ``mkdocs build --strict`` passes (broken links, missing pages and anchors fail);
- the generated reference (``docs/_gen/reference.py``) names every command, argument and flag
  of the Typer app and every option the registries hold (engines' and schedulers' DEFAULTS,
  strategies' PARAMS, CL parameters, evaluator options, backbones, streams, executors);
- every ```python block of the docs runs (or, marked ``docs-test: compile-only``, compiles);
- every ```bash example is checked: ``evocl ...`` parsed by the real click command (unknown
  flags and bad values fail), ``python experiments/X.py --flag`` names an existing script and
  flags it declares, ``make T`` an existing target;
- every repository path the docs and the README name in backquotes exists.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_gen"))
import reference  # noqa: E402

PAGES = sorted(p for p in DOCS.rglob("*.md") if "_gen" not in p.parts)
SOURCES = [*PAGES, ROOT / "README.md", *sorted((ROOT / "experiments").rglob("README.md"))]
FENCE = re.compile(r"^(<!-- docs-test: (?P<mode>[\w-]+)[^>]*-->\n)?```(?P<lang>\w*)\n(?P<body>.*?)^```$",
                   re.M | re.S)


def _blocks(lang: str, sources=SOURCES):
    for path in sources:
        text = reference.expand(path.read_text())
        for m in FENCE.finditer(text):
            if m.group("lang") == lang:
                line = text[:m.start("body")].count("\n") + 1
                yield pytest.param(m.group("body"), m.group("mode"),
                                   id=f"{path.relative_to(ROOT)}:{line}")


# ----------------------------------------------------------------------------------- build

def test_mkdocs_build_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs-material is not installed (it is in the dev extra: pip install -e '.[dev]')")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for page in ("index.html", "reference/cli/index.html", "reference/options/index.html",
                 "architecture/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    html = (tmp_path / "site" / "strategies" / "index.html").read_text()
    assert "evocl:" not in html and "ewc_lambda" in html  # the marker was expanded


# ------------------------------------------------------------------------------- reference

def test_cli_reference_names_every_command_and_flag():
    text = reference.render("reference/cli.md")
    sections = re.split(r"^## ", text, flags=re.M)
    by_title = {s.splitlines()[0].strip("` "): s for s in sections[1:]}
    commands = list(reference.iter_commands(reference.cli_root()))
    assert {"evocl search", "evocl space sample", "evocl streams list"} <= {p for p, _ in commands}
    for path, cmd in commands:
        assert path in by_title, f"no section for {path}"
        for p in cmd.params:
            if p.name == "help":
                continue
            if reference.is_argument(p):
                assert f"`{p.name.upper()}`" in by_title[path], (path, p.name)
                continue
            for opt in [*p.opts, *p.secondary_opts]:
                assert f"`{opt}`" in by_title[path], (path, opt)


def test_options_reference_names_every_registered_option():
    from evocl.cl.names import Options
    from evocl.cl.params import PARAMS
    from evocl.cl.strategies import STRATEGIES
    from evocl.registry import BACKBONES, ENGINES, EXECUTORS, SCHEDULERS, STREAMS

    text = reference.render("reference/options.md")

    def section(title: str, level: str = "##") -> str:
        m = re.search(rf"^{level} {re.escape(title)}\n(.*?)(?=^{level} |\Z)", text, re.M | re.S)
        assert m, f"no section {title!r}"
        return m.group(1)

    for reg, title in ((ENGINES, "Engines"), (SCHEDULERS, "Early stopping")):
        for name in reg.names():
            part = section(f"`{name}`", "###")
            assert title in text
            for key in getattr(reg.load(name), "DEFAULTS", {}):
                assert f"| `{key}` |" in part, (name, key)
    for name in STRATEGIES.names():
        part = section(f"`{name}`", "###")
        for p in STRATEGIES.load(name).PARAMS:
            assert f"| `{p.name}` |" in part, (name, p.name)
    assert all(f"| `{n}` |" in text for n in PARAMS), "a CL parameter is missing"
    evaluator = section("Evaluator options")
    assert all(f"| `{n}` |" in evaluator for n in Options.names())
    for reg, title in ((BACKBONES, "Backbones"), (STREAMS, "Streams"), (EXECUTORS, "Executors")):
        part = section(title)
        assert all(f"| `{n}` |" in part for n in reg.names()), title


def test_a_new_flag_would_be_caught(monkeypatch):
    """The check above fails when the generator leaves a flag out (it can fail)."""
    real = reference._param_row
    monkeypatch.setattr(reference, "_param_row",
                        lambda p: "" if "--budget" in p.opts else real(p))
    with pytest.raises(AssertionError):
        test_cli_reference_names_every_command_and_flag()


def test_markers_name_known_tables():
    for path in PAGES:
        for name in re.findall(r"^<!-- evocl:([\w-]+) -->$", path.read_text(), re.M):
            assert name in reference.TABLES, f"{path}: unknown table {name}"


# -------------------------------------------------------------------------------- examples

@pytest.mark.parametrize("code, mode", list(_blocks("python")))
def test_python_example(code, mode, tmp_path):
    compile(code, "<docs>", "exec")
    if mode == "compile-only":
        return
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "examples")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


#: wrappers before a command, and how many words each takes (``source`` ends the line)
_WRAPPERS = {"nice": ("-n", 1), "flock": (None, 1), "timeout": (None, 1), "env": (None, 0)}


def _commands(block: str):
    """Each shell command of a block: continuation lines joined, comments dropped, the
    environment assignments and wrappers (nice -n 10, flock LOCK) skipped."""
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            if re.match(r"^[A-Z_]+=", words[0]):
                words = words[1:]
            elif words[0] in _WRAPPERS:
                flag, n = _WRAPPERS[words[0]]
                words = words[1:]
                if flag and words and words[0] == flag:
                    words = words[1 + n:]
                elif not flag:
                    words = words[n:]
            else:
                break
        if words and words[0] != "source":
            yield words


def _script_flags(path: Path) -> set[str]:
    flags = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            flags |= {a.value for a in node.args if isinstance(a, ast.Constant)}
    return flags


def _check_evocl(words: list[str]) -> None:
    cmd, args = reference.cli_root(), words[1:]
    while args and args[0] in ("--debug",):
        args = args[1:]
    name = "evocl"
    while getattr(cmd, "commands", None) and args:
        assert args[0] in cmd.commands, f"unknown command {args[0]!r} in {' '.join(words)}"
        name += " " + args[0]
        cmd, args = cmd.commands[args[0]], args[1:]
    cmd.make_context(name, list(args))  # raises on an unknown flag or a bad value


@pytest.mark.parametrize("block, mode", list(_blocks("bash")))
def test_shell_example(block, mode):
    makefile = (ROOT / "Makefile").read_text()
    for words in _commands(block):
        head = Path(words[0]).name
        if head == "evocl":
            _check_evocl(words)
        elif head.startswith("python") and len(words) > 1 and words[1].endswith(".py"):
            script = ROOT / words[1]
            assert script.is_file(), f"no script {words[1]}"
            declared = _script_flags(script)
            for w in words[2:]:
                flag = w.split("=", 1)[0]
                if flag.startswith("--"):
                    assert flag in declared, f"{words[1]} declares no {flag}"
        elif head == "python" or head.startswith("python"):
            continue
        elif head == "make":
            for target in (w for w in words[1:] if "=" not in w):
                assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"no make target {target}"
        elif head.endswith(".sh"):
            assert (ROOT / words[0]).is_file(), f"no script {words[0]}"


# ----------------------------------------------------------------------------------- paths

_PATH = re.compile(r"`((?:experiments|tests|evocl|examples|search_spaces|docs)/[\w./-]*)`")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_paths_named_exist(path):
    missing = [m for m in _PATH.findall(path.read_text())
               if not any(c in m for c in "*<>") and not (ROOT / m.rstrip("/.")).exists()]
    assert not missing, f"{path.relative_to(ROOT)} names missing files: {missing}"


# ---------------------------------------------------------------------------- architecture

def test_no_new_import_circles():
    cycles = reference.import_cycles(reference.import_graph())
    assert ["evocl.cl.backbone", "evocl.cl.causal_lm", "evocl.cl.gguf"] not in cycles
    assert not any("evocl.space.space" in c and "evocl.space.validate" in c for c in cycles)
    assert cycles == [], f"import circles: {cycles}"


def test_import_cycles_finds_a_circle(tmp_path):
    pkg = tmp_path / "evocl"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from evocl.b import x\n")
    (pkg / "b.py").write_text("def f():\n    from evocl import a\n")
    assert reference.import_cycles(reference.import_graph(pkg)) == [["evocl.a", "evocl.b"]]


def test_readme_links_resolve():
    """Every relative link of the README names a file of the repository or a generated page,
    and the README links to every page of the site (the benchmark pages through their index)."""
    text = (ROOT / "README.md").read_text()
    generated = {f"docs/{p}" for p in reference.PAGES}
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert len(links) > 15
    missing = [ln for ln in links if "://" not in ln and ln not in generated
               and not (ROOT / ln).exists()]
    assert not missing, missing
    for page in PAGES:  # the README links into every page of the site
        rel = str(page.relative_to(ROOT))
        if rel != "docs/index.md" and (not rel.startswith("docs/benchmarks/") or rel.endswith("index.md")):
            assert rel in links, f"the README does not link to {rel}"


# ------------------------------------------------------------------------------ experiments

EXPERIMENTS = ROOT / "experiments"
GROUPS = sorted(p for p in EXPERIMENTS.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def test_experiments_are_grouped_by_question():
    """No script lies loose at the top of experiments/ (only the shared module); every folder
    has a README with its question, command, latest results and answer, listed in the index;
    every result file a README names exists."""
    loose = [p.name for p in EXPERIMENTS.iterdir() if p.is_file() and p.suffix in (".py", ".sh")
             and p.name != "common.py"]
    assert not loose, f"scripts outside a question's folder: {loose}"
    index = (EXPERIMENTS / "README.md").read_text()
    assert len(GROUPS) >= 8
    for group in GROUPS:
        readme = group / "README.md"
        assert readme.is_file(), f"{group.relative_to(ROOT)} has no README.md"
        text = readme.read_text()
        for head in ("**Question.**", "**Command**", "**Latest results.**", "**Answer.**"):
            assert head in text, f"{readme.relative_to(ROOT)} lacks {head}"
        assert f"({group.name}/README.md)" in index, f"experiments/README.md does not list {group.name}"
        named = re.findall(r"`(results/[\w./-]+?\.(?:json|jsonl))`", text)
        assert named, f"{readme.relative_to(ROOT)} names no result file"
        for rel in named:
            assert (group / rel).is_file(), f"{readme.relative_to(ROOT)} names missing {rel}"
        scripts = [p for p in group.iterdir() if p.suffix in (".py", ".sh")]
        assert scripts, f"{group.relative_to(ROOT)} holds no script"


def test_every_result_file_records_command_commit_and_machine():
    """Each result JSON says where it came from (``common.write_json`` adds it to new ones; the
    files older than that carry a ``provenance`` filled in from git history)."""
    import json

    files = sorted(p for g in GROUPS for p in (g / "results").rglob("*.json"))
    assert len(files) > 50
    for path in files:
        data = json.loads(path.read_text())
        prov = data.get("provenance") if isinstance(data, dict) else None
        assert isinstance(prov, dict), f"{path.relative_to(ROOT)}: no provenance"
        for key in ("command", "git_commit", "machine"):
            assert prov.get(key), f"{path.relative_to(ROOT)}: provenance.{key} is empty"
        assert re.fullmatch(r"[0-9a-f]{40}", prov["git_commit"]), path
        if "superseded_by" in prov:
            assert (path.parent / prov["superseded_by"]).is_file(), path
