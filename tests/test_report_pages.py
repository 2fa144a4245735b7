"""`evocl report` and `evocl compare` pages on real tiny-model searches: every image the HTML
references exists and is a non-empty PNG, every plot of evaluations marks sequential
fine-tuning, parameter importance per objective, the comparison table; rendered by a headless
Chromium where one is installed."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from PIL import Image

from evocl.cli import main
from evocl.records import RunConfig
from evocl.report.plots import BASELINE_KEY
from evocl.runner import run_search
from evocl.space import load, resolve_space

pytestmark = pytest.mark.slow
OPTIONS = {"max_eval_per_task": 16, "max_length": 16}


def cl_run(root: Path, name: str, **kw) -> Path:
    space = resolve_space("tiny")
    cfg = RunConfig(space=str(space), run_dir=str(root / name), stream="synthetic",
                    backbone="tiny", seed=1, evaluator_options=OPTIONS,
                    initial=[load(space).default_config()], **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_search(cfg)
    return root / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_torch_thread) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pages")
    return (cl_run(root, "nsga2", population=4, generations=2),
            cl_run(root, "random", algorithm="random", budget=3))


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        for key in ("href", "src"):  # anything else the page would load
            if tag in ("link", "script", "iframe") and attrs.get(key):
                self.images.append(attrs[key])


def referenced_images(page: Path) -> list[Path]:
    """Every file the page refers to; each must exist, be non-empty and a readable PNG."""
    parser = _Refs()
    parser.feed(page.read_text())
    assert parser.images, "the page shows no image"
    paths = []
    for src in parser.images:
        assert src and "://" not in src and not src.startswith("/"), src
        path = page.parent / src
        assert path.is_file() and path.stat().st_size > 0, src
        with Image.open(path) as img:
            img.verify()
            assert img.format == "PNG"
        paths.append(path)
    return paths


def test_report_images_exist_and_mark_sequential_fine_tuning(runs, tmp_path, capsys):
    run, _ = runs
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    page = tmp_path / "rep" / "index.html"
    images = {p.name: p for p in referenced_images(page)}
    assert set(images) == {"progress.png", "pareto.png", "parallel.png", "importance.png",
                           "parameters.png", "accuracy_matrix.png"}
    for name, path in images.items():
        if name == "importance.png":
            continue  # per parameter, not per evaluation: nothing to mark
        with Image.open(path) as img:
            assert img.text.get(BASELINE_KEY) == "candidate 0", name
    text = page.read_text()
    assert "sequential fine-tuning" in text and "(sequential fine-tuning)" in text


def test_report_importance_table_covers_every_parameter_and_objective(runs, tmp_path):
    run, _ = runs
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    text = (tmp_path / "rep" / "index.html").read_text()
    section = text.split("<h2>What matters</h2>", 1)[1].split("<h2>", 1)[0]
    space = load(resolve_space("tiny"))
    for name in [p.name for p in space.parameters] + ["acc", "forgetting"]:
        assert f">{name}<" in section, name
    for objective in ("acc", "forgetting"):
        col = ["acc", "forgetting"].index(objective)
        shares = [float(row.split("<td>")[2 + col].split("%")[0])
                  for row in section.split("<tr>")[2:]]
        assert sum(shares) == pytest.approx(100.0, abs=1.0)


def test_fanova_finds_the_parameter_an_objective_is_made_of(tmp_path):
    """ZDT1: f1 is x0 itself, so x0 explains (nearly) all of f1's variance."""
    from evocl.evolution.problems import problem_dict
    from evocl.report.importance import parameter_importance
    from evocl.storage import read_run

    space = tmp_path / "zdt1.yaml"
    space.write_text(yaml.safe_dump(problem_dict("zdt1", n_var=4)))
    run_search(RunConfig(space=str(space), run_dir=str(tmp_path / "z"),
                         objective="evocl.evolution.problems:Problem",
                         evaluator_options={"name": "zdt1", "n_var": 4}, algorithm="random",
                         budget=60, seed=0))
    view = read_run(tmp_path / "z")
    imp, note = parameter_importance(view.evaluations, view.space)
    assert note is None
    assert imp["f1"]["x0"] > 0.9
    assert max(imp["f1"], key=imp["f1"].get) == "x0"
    few, why = parameter_importance(view.evaluations[:5], view.space)
    assert few == {} and "at least 8" in why


def test_optuna_mirror_names_the_objectives(runs):
    import optuna

    run, _ = runs
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run / "optuna.journal")))
    study = optuna.load_study(study_name="nsga2", storage=storage)
    assert study.metric_names == ["acc", "forgetting"]


def test_compare_page(runs, tmp_path):
    from evocl.storage import read_run

    a, b = runs
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    page = tmp_path / "cmp" / "index.html"
    images = {p.name: p for p in referenced_images(page)}
    assert set(images) == {"compare_hypervolume.png", "compare_best.png", "compare_fronts.png"}
    for path in images.values():
        with Image.open(path) as img:
            assert img.text.get(BASELINE_KEY) == "candidate 0", path.name
    text = page.read_text()
    table = text.split("with its test accuracy</h2>", 1)[1]
    for run in (a, b):
        view = read_run(run)
        ok = [(c, r) for c, r in view.evaluations if r.ok]
        c, r = max(ok, key=lambda e: (e[1].objectives["acc"], -e[0].id))
        row = table.split(f"<td><b>{run.name}</b></td>", 1)[1].split("</tr>", 1)[0]
        assert row.startswith(f"<td>{c.id}</td>")
        assert f"<td>{r.metrics['test_acc']['mean']:.4g}</td>" in row
    assert "sequential fine-tuning" in table


def test_compare_refuses_what_does_not_compare(runs, tmp_path, capsys):
    a, b = runs
    assert main(["compare", str(a), "--out", str(tmp_path / "c1")]) == 2
    assert "at least two" in capsys.readouterr().err
    other = tmp_path / "other"
    shutil.copytree(b, other)
    meta = yaml.safe_load((other / "run.yaml").read_text())
    meta["config"]["stream"] = "default"
    (other / "run.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    assert main(["compare", str(a), str(other), "--out", str(tmp_path / "c2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different streams" in err[0]


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


@pytest.mark.skipif(_chromium() is None, reason="no chromium installed (apt-get install chromium)")
@pytest.mark.parametrize("kind", ["report", "compare"])
def test_pages_render_in_headless_chromium(runs, tmp_path, kind):
    a, b = runs
    args = ["report", str(a)] if kind == "report" else ["compare", str(a), str(b)]
    assert main(args + ["--out", str(tmp_path / kind)]) == 0
    shot = tmp_path / f"{kind}.png"
    proc = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1200,2400", f"--screenshot={shot}",
         (tmp_path / kind / "index.html").resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 0, proc.stderr[-2000:]
    with Image.open(shot) as img:
        grey = img.convert("L")
        hist = grey.histogram()
    n = sum(hist)
    dark = sum(hist[:200]) / n          # text, lines, plotted points
    assert 0.01 < dark < 0.9            # neither blank white nor one solid block
    assert sum(1 for h in hist if h) > 20  # more than a couple of flat colours
