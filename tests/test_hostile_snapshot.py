"""Snapshots are a cache, the journal is the truth (issue 18, items 2 and 3), for every engine.

A snapshot is used only when the journal names its bytes (a ``snapshot`` event with their
SHA-256) and its engine state agrees with run.yaml (algorithm, options, seed, population,
space) and with the journal's candidates and told results. Each case damages or forges every
snapshot of a finished run, twice: once in the snapshot only (its bytes no longer match the
journal), once with the journal's SHA-256 forged to match (so the state's own checks must
catch it). Either way the resume gives no traceback, says in one warning line which snapshot
it ignored, and ends exactly as the resume of the untouched run: nothing in a snapshot changes
what run.yaml and the journal say.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest
from _hostile_helpers import cli, resume, zdt_run

from evocl.registry import ENGINES
from evocl.storage import read_run

pytestmark = pytest.mark.timeout(300, method="signal")  # pool_size=1e9 once hung resume

MORE = ("--generations", "5")


def _outcome(run: Path) -> list[tuple[int, str, dict[str, float]]]:
    """Every told evaluation of a run: (id, config hash, objectives), in tell order."""
    return [(c.id, c.config_hash, dict(r.objectives)) for c, r in read_run(run).evaluations]


class _Bases:
    """One finished run per engine (12 results, a snapshot every 4) and the outcome of its
    untouched resume; built on first use."""

    def __init__(self, root: Path):
        self.root = root
        self.runs: dict[str, tuple[Path, list]] = {}

    def get(self, engine: str, capsys) -> tuple[Path, list]:
        if engine not in self.runs:
            tmp = self.root / engine
            tmp.mkdir()
            base = zdt_run(tmp, algorithm=engine, generations=3, population=4,
                           snapshot_every=4)
            ref = tmp / "reference"
            shutil.copytree(base, ref)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                code, _, err = cli(capsys, *resume(ref, *MORE))
            assert code == 0, err
            ignored = [str(w.message) for w in caught if "snapshot" in str(w.message)]
            assert not ignored, ignored          # an honest snapshot is always used
            self.runs[engine] = (base, _outcome(ref))
        return self.runs[engine]


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> _Bases:
    return _Bases(tmp_path_factory.mktemp("snapshots"))


def _del(key: str) -> Callable[[dict], None]:
    return lambda s: s.pop(key)


def _set(key: str, value: Any) -> Callable[[dict], None]:
    return lambda s: s.__setitem__(key, value)


def _other_algorithm(s: dict) -> None:
    s["algorithm"] = "nsga2" if s["algorithm"] == "random" else "random"


def _huge_options(s: dict) -> None:
    s["options"] = {**s["options"], "pool_size": 1e9, "eta_c": 1e308, "lr": 1e308}


def _fabricated_result(s: dict) -> None:
    for _, res in s["told"]:
        res["objectives"]["f1"] = -5.0      # better than any ZDT1 point: would top the front


# -5 as a shown value, not inside a path or a token: pytest's temporary directories
# (/tmp/pytest-of-root/pytest-5/...) are printed in the output and made a bare "-5" check
# fail on a machine whose pytest had run 5 times
_FABRICATED = re.compile(r"(?<![\w/.-])-5(?:\.\d*)?(?![\w/])")


def _truncate_candidates(s: dict) -> None:
    s["candidates"] = s["candidates"][:2]


def _empty_extra(s: dict) -> None:
    s["extra"] = {} if s["extra"] else {"population": [999]}  # random keeps none: add some


def _seed(s: dict) -> None:
    s["seed"] = s["seed"] + 1


#: name -> edit of the engine state (None: the file's bytes are cut instead)
CASES: dict[str, Callable[[dict], None] | None] = {
    "population_size-missing": _del("population_size"),
    "extra-emptied": _empty_extra,
    "extra-wrong-type": _set("extra", 5),
    "told-not-a-list": _set("told", {"0": 1}),
    "candidates-truncated": _truncate_candidates,
    "algorithm-random": _other_algorithm,
    "options-huge": _huge_options,
    "seed-changed": _seed,
    "told-result-fabricated": _fabricated_result,
    "file-truncated": None,
}
#: cases that a state can hold without harm once the journal vouches for its bytes (the
#: engine derived this part, or has none): a forged one may be used, the outcome is the same
HARMLESS_WHEN_FORGED = {"extra-emptied", "extra-wrong-type"}


def _edit_snapshots(run: Path, edit: Callable[[dict], None] | None, forge: bool) -> None:
    """Apply ``edit`` to every snapshot of ``run``; ``forge``: make the journal name the new
    bytes (an attacker who edits the journal's snapshot events too)."""
    digests = {}
    for snap in sorted((run / "snapshots").iterdir()):
        data = snap.read_bytes()
        if edit is None:
            new = data[: len(data) // 2]
        else:
            doc = json.loads(data)
            edit(doc["engine"])
            new = (json.dumps(doc, sort_keys=True) + "\n").encode()
        assert new != data
        snap.write_bytes(new)
        digests[snap.name] = hashlib.sha256(new).hexdigest()
    if not forge:
        return
    lines = (run / "journal.jsonl").read_bytes().splitlines(keepends=True)
    out = []
    for line in lines:
        e = json.loads(line)
        if e.get("event") == "snapshot" and e["file"] in digests:
            e["sha256"] = digests[e["file"]]
            line = (json.dumps(e, separators=(",", ":")) + "\n").encode()
        out.append(line)
    (run / "journal.jsonl").write_bytes(b"".join(out))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("engine", ENGINES.names())
def test_a_damaged_or_forged_snapshot_never_changes_the_run(bases, tmp_path, capsys, engine,
                                                             case):
    base, reference = bases.get(engine, capsys)
    for forge in (False, True):
        run = tmp_path / f"run-{forge}"
        shutil.copytree(base, run)
        _edit_snapshots(run, CASES[case], forge)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code, out, err = cli(capsys, *resume(run, *MORE))
        assert code == 0, err                              # no traceback, no refusal
        notes = [str(w.message) for w in caught]
        ignored = [n for n in notes if "snapshot ignored" in n or "resume from snapshot" in n]
        if not (forge and case in HARMLESS_WHEN_FORGED):
            assert ignored, notes
            assert all("\n" not in n for n in ignored)
        assert not _FABRICATED.search(out), out            # the fabricated result not shown
        assert _outcome(run) == reference, (engine, case, forge)


def test_resume_of_a_run_before_journal_named_snapshots_replays_the_journal(bases, tmp_path,
                                                                            capsys):
    """A run written before snapshots were named in the journal (no snapshot events): its
    snapshots are never trusted; the journal alone rebuilds the engine, exactly."""
    base, reference = bases.get("sa-nsga2", capsys)
    run = tmp_path / "old"
    shutil.copytree(base, run)
    lines = (run / "journal.jsonl").read_bytes().splitlines(keepends=True)
    (run / "journal.jsonl").write_bytes(b"".join(
        line for line in lines if b'"event":"snapshot"' not in line))
    with pytest.warns(UserWarning, match="journal does not name these bytes"):
        code, _, err = cli(capsys, *resume(run, *MORE))
    assert code == 0, err
    assert _outcome(run) == reference
