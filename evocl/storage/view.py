"""Read-only view of a run directory: no lock taken, safe on a live run (e.g. for reports).

Read through the run directory's box (``evocl.safefile``): no link in it is followed."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

from evocl.errors import RunDirError, UserError
from evocl.records import Candidate, Result, RunConfig
from evocl.safefile import Box
from evocl.storage.journal import read_events
from evocl.storage.lock import live_owner
from evocl.storage.rundir import RUN_FILE, load_run_file, space_summary


class RunView:
    """What a run holds, read from run.yaml and journal.jsonl at construction."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.meta: dict[str, Any] = load_run_file(self.path)  # the layout checked first
        self.box = Box(self.path)
        self.live_pid = live_owner(self.box)  # a search is writing this run right now
        self.events = read_events(self.box, live=self.live_pid is not None)
        self.candidates_by_id: dict[int, Candidate] = {}
        self._told: list[tuple[Candidate, Result]] = []
        self._elapsed: list[float | None] = []
        self._reports: dict[int, dict[int, dict[str, Any]]] = {}
        told_ids: set[int] = set()
        for e in self.events:
            if e["event"] == "report":
                report = e.get("report") or {}
                self._reports.setdefault(int(e["id"]), {})[int(report.get("tasks_seen", 0))] = report
            if e["event"] == "ask":
                for d in e.get("candidates", ()):
                    c = Candidate.from_dict(d)
                    self.candidates_by_id[c.id] = c
            elif e["event"] == "tell" and e["id"] in self.candidates_by_id \
                    and e["id"] not in told_ids:  # a tell of nothing asked, or a second one
                told_ids.add(e["id"])
                self._told.append((self.candidates_by_id[e["id"]], Result.from_dict(e["result"])))
                self._elapsed.append(float(e["elapsed"]) if "elapsed" in e else None)
        self._pending = [c for i, c in sorted(self.candidates_by_id.items()) if i not in told_ids]

    @property
    def config(self) -> RunConfig:
        return RunConfig.from_dict(self.meta["config"])

    @cached_property
    def space(self) -> Any:
        """The run's SearchSpace, rebuilt from run.yaml (not from the YAML file it came from)."""
        return space_of(self.meta, self.path)

    @property
    def objectives(self) -> list[dict[str, Any]]:
        """name / direction / ref of each objective (from the validated space)."""
        return space_summary(self.space)["objectives"]

    @property
    def constraints(self) -> list[dict[str, Any]]:
        return space_summary(self.space)["constraints"]

    @property
    def evaluations(self) -> list[tuple[Candidate, Result]]:
        return list(self._told)

    @property
    def elapsed(self) -> list[float | None]:
        """Search wall time (seconds, all sessions) at each evaluation's tell, as
        ``evaluations``; None where the journal did not record it."""
        return list(self._elapsed)

    @property
    def reports(self) -> dict[int, list[dict[str, Any]]]:
        """Per-task reports of each candidate (early stopping), by task count."""
        return {cid: [r for _, r in sorted(by_t.items())] for cid, by_t in self._reports.items()}

    @property
    def pending(self) -> list[Candidate]:
        return list(self._pending)

    @property
    def changes(self) -> list[dict[str, Any]]:
        return list(self.meta.get("changes", []))

    def pareto_front(self) -> list[tuple[Candidate, Result]]:
        """Successful, feasible, non-dominated evaluations in tell order (``evolution.pareto``'s
        rule: the engines' front)."""
        from evocl.evolution.pareto import front
        return front(self._told, self.space)


def space_of(meta: dict[str, Any], path: str | os.PathLike[str]) -> Any:
    """The SearchSpace saved in a run's run.yaml; RunDirError naming the file when it is not
    a valid space (run.yaml may have been edited by hand)."""
    from evocl.space import SearchSpace

    try:
        return SearchSpace.from_dict(meta["space"], source=str(Path(path) / RUN_FILE))
    except UserError as e:
        raise RunDirError(e.rule, source=e.source, field=f"space.{e.field}" if e.field
                          else "space") from None
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise RunDirError(f"not a valid search space ({type(e).__name__})",
                          source=str(Path(path) / RUN_FILE), field="space") from None


def read_run(path: str | os.PathLike[str]) -> RunView:
    """Open a run directory read-only (RunDirError when it is not an evocl run)."""
    return RunView(path)
