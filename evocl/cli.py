"""The `evocl` command line: parses arguments, builds a RunConfig, calls runner/export/report.

Every user error ends as one line on stderr and exit code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import json
import sys
import traceback
import warnings
from pathlib import Path
from typing import List, Optional

import typer

from evocl import __version__
from evocl.errors import UserError
from evocl.registry import BACKBONES, ENGINES, EXECUTORS, SCHEDULERS, STREAMS
from evocl.space import resolve_space

try:  # typer >= 0.20 vendors its own click; older releases use click itself
    from typer._click import exceptions as _cx
    from typer.exceptions import Abort as _Abort
    from typer.exceptions import Exit as _Exit
except ImportError:  # pragma: no cover - depends on the installed typer
    import click.exceptions as _cx
    from click.exceptions import Abort as _Abort
    from click.exceptions import Exit as _Exit

app = typer.Typer(
    name="evocl",
    help="Evolutionary search for continual-learning configurations of transformer models.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
space_app = typer.Typer(help="Validate, show and sample search spaces.", no_args_is_help=True)
streams_app = typer.Typer(help="List the built-in task streams.", no_args_is_help=True)
app.add_typer(space_app, name="space")
app.add_typer(streams_app, name="streams")

_DEBUG = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"evocl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
) -> None:
    """Evolutionary search for continual-learning configurations of transformer models."""
    global _DEBUG
    _DEBUG = debug


# ---------------------------------------------------------------------------------- space

@space_app.command("validate")
def space_validate(files: List[Path] = typer.Argument(..., help="Search-space YAML files.")) -> None:
    """Check search spaces: OK, or one line per problem (exit 2)."""
    from evocl.space import check_file

    bad = False
    for f in files:
        problems = check_file(resolve_space(str(f)))
        if problems:
            bad = True
            for line in problems:
                typer.echo(line, err=True)
        else:
            typer.echo(f"{f}: OK")
    if bad:
        raise typer.Exit(2)


@space_app.command("show")
def space_show(file: Path = typer.Argument(..., help="Search-space YAML file.")) -> None:
    """Show parameters: type, range or choices, scale, condition."""
    from rich.console import Console
    from rich.table import Table

    from evocl.space import load

    space = load(resolve_space(str(file)))
    table = Table(title=str(file))
    for col in ("parameter", "type", "range / choices", "condition"):
        table.add_column(col)
    for p in space.parameters:
        table.add_row(p.name, p.type, p.describe_range(), p.describe_condition() or "")
    console = Console()
    console.print(table)
    objs = ", ".join(f"{o.name} ({o.direction})" for o in space.objectives)
    console.print(f"objectives: {objs}")
    for c in space.constraints:
        bounds = " and ".join(b for b in (
            f">= {c.min:g}" if c.min is not None else "", f"<= {c.max:g}" if c.max is not None else "") if b)
        console.print(f"constraint: {c.name} {bounds}")


@space_app.command("sample")
def space_sample(
    file: Path = typer.Argument(..., help="Search-space YAML file."),
    n: int = typer.Option(5, "-n", "--n", min=1, help="How many configurations."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**63 - 1, help="Seed of the sampler."),
    fmt: str = typer.Option("yaml", "--format", help="yaml or jsonl."),
) -> None:
    """Print N valid configurations drawn from the space."""
    import numpy as np
    import yaml

    from evocl.space import load

    if fmt not in ("yaml", "jsonl"):
        raise UserError(f"must be yaml or jsonl, got {fmt!r}", field="--format")
    space = load(resolve_space(str(file)))
    rng = np.random.default_rng(seed)
    configs = [space.canonical(space.sample(rng)) for _ in range(n)]
    if fmt == "jsonl":
        for c in configs:
            typer.echo(json.dumps(c))
    else:
        typer.echo(yaml.safe_dump(configs, sort_keys=False).rstrip())


# -------------------------------------------------------------------------------- streams

@streams_app.command("list")
def streams_list() -> None:
    """The built-in task streams with their tasks and sizes."""
    from evocl.streams import list_streams

    for s in list_streams():
        sizes = s.get("sizes") or {}
        size_txt = "/".join(str(sizes.get(k, "?")) for k in ("train", "val", "test"))
        typer.echo(f"{s['name']}  ({s['scenario']}, {len(s['tasks'])} tasks, train/val/test {size_txt})")
        typer.echo(f"    {s['description']}")
        if s.get("error"):
            typer.echo(f"    unavailable: {s['error']}")
        task_sizes = s.get("task_sizes") or []
        for i, task in enumerate(s["tasks"]):
            what = task if isinstance(task, str) else ", ".join(task)  # generative: a task name
            n = task_sizes[i] if i < len(task_sizes) else None
            rows = f"  ({n['train']}/{n['val']}/{n['test']})" if n else ""
            typer.echo(f"    task {i}: {what}{rows}")
        if s.get("retention"):
            r = s["retention"]
            typer.echo(f"    retention: {r['name']} ({r['rows']} rows, {r['metric']})")
    typer.echo("use with --stream NAME (`default` is the default), or --stream path/to/spec.yaml")


# --------------------------------------------------------------------------------- search

@app.command("search")
def search_cmd(
    run_dir: Path = typer.Option(..., "--run-dir", help="Directory of the run (created; must not hold a run)."),
    space: Optional[str] = typer.Option(None, "--space", help="Search-space YAML file or shipped name (default: cl_lora, or cl_lm for a causal-LM backbone)."),
    stream: str = typer.Option("default", "--stream", help=f"Built-in stream ({', '.join(STREAMS.names())}; see `evocl streams list`) or a stream spec YAML."),
    backbone: str = typer.Option("minilm", "--backbone", help=f"Backbone: {BACKBONES.help()}; or a local HF checkpoint directory, a folder holding a .gguf file, or a .gguf file."),
    objective: str = typer.Option("cl", "--objective", help="cl, or module:Class of an evaluation target."),
    algorithm: str = typer.Option("sa-nsga2", "--algorithm", help=f"Search engine: {ENGINES.help()}."),
    algorithm_option: List[str] = typer.Option(
        [], "--algorithm-option",
        help="Engine option KEY=VALUE (JSON value), repeatable, e.g. eta_m=30 (see the "
             "engine's DEFAULTS)."),
    early_stop: str = typer.Option("none", "--early-stop",
                                   help=f"Stop candidates early over tasks seen: {SCHEDULERS.help()}."),
    early_stop_option: List[str] = typer.Option(
        [], "--early-stop-option",
        help="Early-stop option KEY=VALUE (JSON value), repeatable: asha: eta (3), min_tasks "
             "(2), rungs (e.g. [2,3]), low_fidelity; model: rungs ([2]), low_fidelity, kappa "
             "(1), min_results (8) (docs/early-stopping.md)."),
    low_fidelity: Optional[float] = typer.Option(
        None, "--low-fidelity",
        help="Lowest rung of --early-stop: every task at this fraction of its steps first "
             "(forgetting over the whole stream); a promoted candidate is trained again at "
             "full steps (same as --early-stop-option low_fidelity=F)."),
    cost_aware: Optional[bool] = typer.Option(
        None, "--cost-aware/--no-cost-aware",
        help="sa-nsga2: rank proposals by expected improvement per predicted second "
             "(same as --algorithm-option cost_aware=true|false)."),
    population: int = typer.Option(8, "--population", help="Population size."),
    generations: Optional[int] = typer.Option(None, "--generations", help="Stop after this many generations."),
    budget: Optional[int] = typer.Option(None, "--budget", help="Stop after this many evaluations."),
    max_wall_time: Optional[float] = typer.Option(None, "--max-wall-time", help="Stop after this many seconds."),
    stagnation: Optional[int] = typer.Option(None, "--stagnation",
                                             help="Stop after this many generations without hypervolume gain."),
    workers: int = typer.Option(1, "--workers", help="Parallel evaluations (Ray actors)."),
    executor: str = typer.Option("auto", "--executor",
                                 help=f"auto (local for 1 worker, else ray), {EXECUTORS.help()}."),
    cpus_per_eval: float = typer.Option(1.0, "--cpus-per-eval", help="CPUs (and torch threads) per evaluation."),
    gpus_per_eval: str = typer.Option("0", "--gpus-per-eval",
                                      help="GPUs per evaluation; fractions pack several on one "
                                           "GPU; auto packs by the memory the first "
                                           "evaluations used."),
    pack: int = typer.Option(1, "--pack", help="Candidates each worker trains together on one "
                                               "frozen backbone (docs/packing.md)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join a Ray cluster (address or 'auto')."),
    ray_dashboard: bool = typer.Option(False, "--ray-dashboard", help="Start Ray's dashboard on 127.0.0.1."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    eval_timeout: Optional[float] = typer.Option(None, "--eval-timeout", help="Seconds before an evaluation is failed."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage URL for the dashboard mirror."),
    fitness_tasks: Optional[int] = typer.Option(None, "--fitness-tasks",
                                                help="Score fitness on the first K tasks only."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**63 - 1, help="Master seed of the run."),
    option: List[str] = typer.Option([], "--option", "-o",
                                     help="Evaluator option KEY=VALUE (JSON value), repeatable."),
    retention: Optional[str] = typer.Option(
        None, "--retention",
        help="Causal LMs: a retention set (JSONL of prompt/response, messages, or prompts "
             "only) scored before training and after every task, replacing the stream's; "
             "`none` drops it (same as -o retention=FILE)."),
    baseline: Optional[bool] = typer.Option(None, "--baseline/--no-baseline",
                                            help="Evaluate the space's default configuration first "
                                                 "(cl_lora.yaml: sequential fine-tuning; on for --objective cl)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Run an evolutionary search (results saved in --run-dir)."""
    from evocl.records import RunConfig
    from evocl.space import load

    if generations is None and budget is None and max_wall_time is None:
        generations = 3
    if space is None:
        from evocl.cl.backbone import backbone_kind

        causal = objective == "cl" and backbone_kind(backbone) == "causal_lm"
        space = "cl_lm" if causal else "cl_lora"
    space_path = resolve_space(space)
    if baseline is None:
        baseline = objective == "cl"
    initial = [load(space_path).default_config()] if baseline else []
    stop_options = _parse_options(early_stop_option, "--early-stop-option")
    if low_fidelity is not None:
        if early_stop == "none":
            raise UserError("needs an early-stop scheduler (--early-stop asha or model)",
                            field="--low-fidelity")
        stop_options["low_fidelity"] = low_fidelity
    engine_options = _parse_options(algorithm_option, "--algorithm-option")
    if cost_aware is not None:
        engine_options["cost_aware"] = cost_aware
    cfg = RunConfig(
        space=str(space_path), run_dir=str(run_dir), stream=stream, backbone=backbone,
        objective=objective, algorithm=algorithm,
        algorithm_options=engine_options, early_stop=early_stop,
        early_stop_options=stop_options,
        population=population, generations=generations,
        budget=budget, max_wall_time=max_wall_time, stagnation=stagnation, seed=seed,
        workers=workers, executor=executor, cpus_per_eval=cpus_per_eval,
        gpus_per_eval=_gpus(gpus_per_eval), pack=pack, ray_address=ray_address,
        ray_dashboard=ray_dashboard,
        device=device, eval_timeout=eval_timeout, storage=storage, fitness_tasks=fitness_tasks,
        evaluator_options=_with_retention(_parse_options(option, "--option"), retention),
        initial=initial,
    )
    _run(cfg, resume=False, quiet=quiet)


def _with_retention(options: dict, retention: Optional[str]) -> dict:
    """--retention FILE as the evaluator option ``retention`` (an absolute path, so that a
    resume from another folder reads the same file; ``none`` as given)."""
    if retention is None:
        return options
    if "retention" in options:
        raise UserError("given twice (--retention and -o retention=...)", field="--retention")
    value = retention if retention.strip().lower() == "none" else str(Path(retention).resolve())
    return {**options, "retention": value}


def _gpus(value: str) -> float | str:
    """--gpus-per-eval: auto or a number (RunConfig checks the range)."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return float(value)
    except ValueError:
        raise UserError(f"must be auto or a number in [0, 1], got {value!r}",
                        field="--gpus-per-eval") from None


def _parse_options(items: List[str], flag: str) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"expected KEY=VALUE, got {item!r}", field=flag)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _run(cfg, *, resume: bool, quiet: bool, keep: tuple[str, ...] = ()):
    from evocl.progress import RichProgress
    from evocl.runner import run_search
    from evocl.ui import print_summary

    progress = None if quiet else RichProgress()
    summary = run_search(cfg, resume=resume, progress=progress, keep=keep)
    print_summary(summary, cfg.run_dir)
    return summary


@app.command("resume")
def resume_cmd(
    run_dir: Path = typer.Argument(..., help="Run directory of a stopped or killed search."),
    budget: Optional[int] = typer.Option(None, "--budget", help="New total evaluation budget."),
    generations: Optional[int] = typer.Option(None, "--generations", help="New total number of generations."),
    objective: Optional[str] = typer.Option(
        None, "--objective", help="The run's objective, named again: an objective other than cl "
                                  "(module:Class) is imported only when named here."),
    trust_objective: bool = typer.Option(
        False, "--trust-objective", help="Import the objective named in run.yaml without naming "
                                         "it (only for run directories you trust)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Parallel evaluations (default 1: run.yaml's is used only with --trust-run-settings)."),
    executor: Optional[str] = typer.Option(None, "--executor", help=f"auto, {EXECUTORS.help()}."),
    cpus_per_eval: Optional[float] = typer.Option(None, "--cpus-per-eval", help="CPUs per evaluation (default 1)."),
    gpus_per_eval: Optional[str] = typer.Option(None, "--gpus-per-eval", help="GPUs per evaluation (default 0)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join this Ray cluster (run.yaml's is never joined unless named here or trusted)."),
    ray_dashboard: Optional[bool] = typer.Option(None, "--ray-dashboard/--no-ray-dashboard", help="Start Ray's dashboard on 127.0.0.1."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage URL for the dashboard mirror (run.yaml's is never opened unless named here or trusted)."),
    trust_run_settings: bool = typer.Option(
        False, "--trust-run-settings", help="Use run.yaml's workers, executor, CPUs/GPUs per "
                                            "evaluation, Ray address and dashboard and storage "
                                            "URL without naming them (only for run directories "
                                            "you trust)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Continue a stopped or killed search exactly where it stood (on this machine, with
    default resources, unless its network and resource settings are named again)."""
    from evocl.runner import resume_plan

    named = {k: v for k, v in (
        ("workers", workers), ("executor", executor), ("cpus_per_eval", cpus_per_eval),
        ("gpus_per_eval", None if gpus_per_eval is None else _gpus(gpus_per_eval)),
        ("ray_address", ray_address), ("ray_dashboard", ray_dashboard),
        ("storage", storage)) if v is not None}
    cfg, keep = resume_plan(run_dir, objective=objective, trust_objective=trust_objective,
                            named=named, trust_run_settings=trust_run_settings)
    if budget is not None:
        cfg = cfg.replace(budget=budget)
    if generations is not None:
        cfg = cfg.replace(generations=generations)
    _run(cfg, resume=True, quiet=quiet, keep=keep)


# --------------------------------------------------------------------------------- export

@app.command("export")
def export_cmd(
    run_dir: Path = typer.Argument(..., help="Run directory."),
    select: str = typer.Option("knee", "--select", help="knee, best:OBJECTIVE, pareto or id:N."),
    fmt: str = typer.Option("yaml", "--format", help="yaml, json, peft, hf, avalanche, trl, axolotl, llamafactory or optuna."),
    out: Path = typer.Option(..., "--out", help="Output file or directory."),
    force: bool = typer.Option(False, "--force", help="Write into --out even if it holds files evocl did not write (they may be replaced)."),
) -> None:
    """Export chosen configurations for other trainers."""
    from evocl.export import export_run

    written = export_run(run_dir, select=select, fmt=fmt, out=out, force=force)
    for path in written:
        typer.echo(f"wrote {path}")


# ---------------------------------------------------------------------------------- train

@app.command("train")
def train_cmd(
    config: Path = typer.Option(..., "--config", help="An exported evocl configuration (YAML or JSON)."),
    out: Path = typer.Option(..., "--out", help="Output directory (adapters, head, metrics)."),
    stream: Optional[str] = typer.Option(None, "--stream", help="Stream (default: the one in the export)."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help=f"Backbone (default: the one in the export): {', '.join(BACKBONES.names())} or a local checkpoint."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, max=2**63 - 1,
                                        help="Training seed (default: the export's)."),
    force: bool = typer.Option(False, "--force", help="Write into --out even if it holds files evocl did not write (they may be replaced)."),
) -> None:
    """Train one exported configuration; save adapters and metrics."""
    from evocl.train import train_exported

    metrics = train_exported(config, out, stream=stream, backbone=backbone, device=device, seed=seed,
                             force=force)
    ppl = f"  perplexity {metrics['perplexity']:.4g}" if "perplexity" in metrics else ""
    typer.echo(f"ACC {metrics['acc']:.4f}  forgetting {metrics['forgetting']:.4f}  "
               f"BWT {metrics['bwt']:.4f}  test accuracy {metrics['test_acc_mean']:.4f}{ppl}")
    typer.echo(f"wrote {out}")


# --------------------------------------------------------------------------------- report

@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="Run directory (may still be running)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: RUN_DIR/report)."),
    force: bool = typer.Option(False, "--force", help="Write into --out even if it holds files evocl did not write (they may be replaced)."),
) -> None:
    """Write PNG plots and index.html for a run."""
    from evocl.report import write_report

    index = write_report(run_dir, out, force=force)
    typer.echo(f"wrote {index}")


@app.command("compare")
def compare_cmd(
    run_dirs: List[Path] = typer.Argument(..., help="Two or more run directories (same stream)."),
    out: Path = typer.Option(Path("compare"), "--out", help="Output folder (index.html and PNGs)."),
    force: bool = typer.Option(False, "--force", help="Write into --out even if it holds files evocl did not write (they may be replaced)."),
) -> None:
    """One page comparing searches: hypervolume and best ACC against evaluations and wall
    time, the final fronts overlaid, each run's best with its test accuracy."""
    from evocl.report.compare import write_compare

    index = write_compare(run_dirs, out, force=force)
    typer.echo(f"wrote {index}")


# ----------------------------------------------------------------------------------- demo

@app.command("demo")
def demo_cmd(
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Default: runs/demo-<time>."),
    workers: int = typer.Option(2, "--workers", help="Parallel evaluations."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**63 - 1, help="Master seed."),
) -> None:
    """Run a real search on the embedded default."""
    from evocl.demo import run_demo

    run_demo(run_dir=run_dir, workers=workers, seed=seed)


# ----------------------------------------------------------------------------------- main

def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    from evocl.errors import summarise

    return f"evocl: warning: {summarise(str(message))}\n"


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the console script: one line and exit 2 on bad input."""
    args = sys.argv[1:] if argv is None else list(argv)
    saved = warnings.formatwarning
    if "--debug" not in args:  # a warning is one line too (Python's default adds the source line)
        warnings.formatwarning = _one_line_warning
    try:
        return _main(args)
    finally:
        warnings.formatwarning = saved


def _empty_argument(args: List[str]) -> Optional[str]:
    """The flag (or position) of an empty argument: ``--run-dir ""`` would otherwise mean the
    current directory (Path("") is "."), and no flag or argument of evocl takes an empty value."""
    for i, arg in enumerate(args):
        if not arg.strip():
            before = args[i - 1] if i else ""
            return before if before.startswith("-") else f"argument {i + 1}"
        flag, sep, value = arg.partition("=")
        if arg.startswith("--") and sep and not value.strip():
            return flag
    return None


def _main(args: List[str]) -> int:
    debug = "--debug" in args
    command = typer.main.get_command(app)
    empty = _empty_argument(args)
    if empty is not None:
        typer.echo(f"evocl: error: {empty}: empty value; name a path or value "
                   f"(the current directory is `.`)", err=True)
        return 2
    try:
        rv = command.main(args=args, prog_name="evocl", standalone_mode=False)
        return int(rv or 0) if isinstance(rv, int) else 0
    except _cx.NoArgsIsHelpError as exc:
        typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        return 0
    except _cx.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "evocl"
        typer.echo(f"{where}: error: {exc.format_message()}", err=True)
        return 2
    except _cx.ClickException as exc:
        typer.echo(f"evocl: error: {exc.format_message()}", err=True)
        return 2
    except _Exit as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except _Abort:
        typer.echo("evocl: interrupted", err=True)
        return 130
    except UserError as exc:
        if debug:
            traceback.print_exc()
        typer.echo(f"evocl: error: {exc.one_line()}", err=True)
        return 2
    except RecursionError:  # a limit missed somewhere: still one line, never a traceback
        if debug:
            traceback.print_exc()
        typer.echo("evocl: error: input nested too deeply to process (RecursionError); "
                   "run with --debug to see where", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("evocl: interrupted; resume with `evocl resume RUN_DIR`", err=True)
        return 130

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
