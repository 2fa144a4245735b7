"""Run directory: config snapshot, append-only journal, engine snapshots, lock, Optuna mirror.

    from evocl.storage import RunDir, read_run
"""

from evocl.storage.optuna_mirror import OptunaMirror, repair_optuna_journal
from evocl.storage.rundir import FORMAT_VERSION, RunDir
from evocl.storage.view import RunView, read_run

__all__ = ["FORMAT_VERSION", "OptunaMirror", "RunDir", "RunView", "read_run",
           "repair_optuna_journal"]
