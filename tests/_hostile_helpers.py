"""Shared by the hostile-input tests (tests/test_hostile_*.py); not a test module.

Every hostile case runs the real command (in this process through ``evocl.cli.main``, or as
a subprocess where the whole of stderr matters) on a real run directory made by a fast ZDT1
search through the runner.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import yaml

from evocl.cli import main
from evocl.evolution.problems import problem_dict
from evocl.records import RunConfig
from evocl.runner import run_search

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVE = "evocl.execution.testing:Recorded"


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``evocl ARGS`` in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def cli_subprocess(*args: str, cwd: Path | None = None, timeout: float = 120,
                   **popen: object) -> subprocess.CompletedProcess:
    """Run ``python -m evocl.cli ARGS`` in a fresh process (stderr whole, warnings included)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(popen.pop("env", {}) or {})  # type: ignore[arg-type]
    return subprocess.run([sys.executable, "-m", "evocl.cli", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout,
                          **popen)  # type: ignore[call-overload]


def one_error_line(err: str) -> str:
    """The single line of stderr (asserting there is exactly one, and no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{err[:3000]}"
    assert "Traceback" not in err
    return lines[0]


def zdt_space(tmp: Path) -> Path:
    space = tmp / "zdt1.yaml"
    if not space.exists():
        space.write_text(yaml.safe_dump(problem_dict("zdt1", n_var=3)))
    return space


def zdt_run(tmp: Path, name: str = "run", *, generations: int = 5, population: int = 4,
            seed: int = 0, **kw: object) -> Path:
    """A finished ZDT1 search (a second or less); evaluations logged to ``tmp/NAME.calls``."""
    cfg = RunConfig(space=str(zdt_space(tmp)), run_dir=str(tmp / name), objective=OBJECTIVE,
                    evaluator_options={"name": "zdt1", "n_var": 3,
                                       "log": str(tmp / f"{name}.calls")},
                    population=population, generations=generations, seed=seed, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_search(cfg)
    return tmp / name


def calls(tmp: Path, name: str = "run") -> list[int]:
    """Candidate ids really evaluated, in order (from the Recorded target's log)."""
    p = tmp / f"{name}.calls"
    return [int(x) for x in p.read_text().split()] if p.exists() else []


def resume(run: Path, *extra: str) -> list[str]:
    """Arguments of ``evocl resume RUN`` naming the run's objective again."""
    return ["resume", str(run), "--objective", OBJECTIVE, "--quiet", *extra]


def journal_lines(run: Path) -> list[bytes]:
    return (run / "journal.jsonl").read_bytes().splitlines(keepends=True)
