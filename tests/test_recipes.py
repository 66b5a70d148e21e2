"""The README's recipes (Architecture: a metric a run records, a metric of the history, a
figure, a backend), followed literally: each block of the recipe section is written into a
copy of the source tree, into the file and at the place its first line names, and a sweep
run with that copy shows each addition everywhere the README says it appears. Nothing is
monkeypatched: a recipe that needs a second edit the README does not name fails here."""

import ast
import difflib
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import REPO, multirun

from mlpsweep import records
from mlpsweep.core.status import Status
from mlpsweep.records.metrics import Metric
from mlpsweep.report.analysis import analyse
from mlpsweep.report.collect import SweepTables, measure
from mlpsweep.report.metrics import OSCILLATION, HistoryMetrics, declared

SECTION = ("Four things a newcomer adds", "## Layout")
PLACE = re.compile(r"# (?P<path>\S+): (?P<where>.+)")


def recipe_blocks(readme):
    """[(path, where, code)] of the recipe section's python blocks, in order: each block's
    first line names its file and place ("# src/...py: in FIGURES")."""
    text = readme.read_text()
    start = text.index(SECTION[0])
    section = text[start : text.index(SECTION[1], start)]
    out = []
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.S):
        first, _, code = block.partition("\n")
        place = PLACE.fullmatch(first)
        assert place, f"a recipe block must open with '# <file>: <place>': {first!r}"
        out.append((place["path"], place["where"], code))
    return out


def _indent(code, prefix):
    return "".join(prefix + line if line.strip() else line for line in code.splitlines(True))


def _statement(tree, name):
    """The module-level statement that defines `name` (an assignment, a def, a class)."""
    for node in tree.body:
        targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
        names = [getattr(t, "id", None) for t in targets] + [getattr(node, "name", None)]
        if name in names:
            return node
    raise AssertionError(f"no {name} in the module")


def _member(tree, cls, name):
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    return next(n for n in node.body if getattr(n, "name", None) == name) if name else node


def write_block(source, where, code):
    """`source` with `code` written at `where`, one of the README's places: "above NAME",
    "in NAME" (a tuple or dict literal), "in CLASS, after its last FUNC(...)", "in the
    dict CLASS.METHOD() returns"."""
    lines = source.splitlines(True)
    tree = ast.parse(source)
    if m := re.fullmatch(r"above (\w+)", where):
        at = _statement(tree, m[1]).lineno - 1
        while at and lines[at - 1].startswith("#"):  # the comment that opens it stays on it
            at -= 1
        return "".join([*lines[:at], code, "\n\n", *lines[at:]])
    if m := re.fullmatch(r"in (\w+), after its last (\w+)\(\.\.\.\)", where):
        fields = [
            n
            for n in _member(tree, m[1], None).body
            if isinstance(n, ast.AnnAssign)
            and isinstance(n.value, ast.Call)
            and getattr(n.value.func, "id", None) == m[2]
        ]
        last = fields[-1]
        at = last.end_lineno
        return "".join([*lines[:at], _indent(code, " " * last.col_offset), *lines[at:]])
    if m := re.fullmatch(r"in the dict (\w+)\.(\w+)\(\) returns", where):
        method = _member(tree, m[1], m[2])
        ret = next(n for n in ast.walk(method) if isinstance(n, ast.Return))
        assert isinstance(ret.value, ast.Dict), "it returns no dict literal"
        first = ret.value.values[0]
        at = ret.value.lineno  # the line that opens the dict: the new key comes first
        return "".join([*lines[:at], _indent(code, " " * first.col_offset), *lines[at:]])
    if m := re.fullmatch(r"in (\w+)", where):
        literal = _statement(tree, m[1]).value
        last = (literal.values if isinstance(literal, ast.Dict) else literal.elts)[-1]
        if literal.end_lineno > last.end_lineno:  # one entry a line: a line (or more) after it
            at = last.end_lineno
            return "".join([*lines[:at], _indent(code, " " * last.col_offset), *lines[at:]])
        row = lines[last.end_lineno - 1]  # all on one line: after its last entry
        entry = ", " + code.strip().rstrip(",")
        lines[last.end_lineno - 1] = row[: last.end_col_offset] + entry + row[last.end_col_offset :]
        return "".join(lines)
    raise AssertionError(f"the README names a place this test does not know: {where!r}")


def followed(tree):
    """The copy of the source tree at `tree` with every recipe block written in."""
    for path, where, code in recipe_blocks(REPO / "README.md"):
        file = tree / path
        assert file.is_file(), f"the README names {path}, which is not a file"
        file.write_text(write_block(file.read_text(), where, code))
    return tree


def copy_of_the_tree(dest):
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("src", "conf", "sweeps"):
        shutil.copytree(REPO / name, dest / name, symlinks=True, ignore=ignore)
    shutil.copy(REPO / "run.py", dest / "run.py")
    return dest


def in_the_copy(tree, *args):
    """`python ARGS` with the copy's package first on the path (the installed one is the
    working tree's)."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(
        [sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, timeout=300
    )


READ_BACK = """
import json, sys
import mlpsweep
from mlpsweep.report.metrics import METRICS
new, old = mlpsweep.load(sys.argv[1]), mlpsweep.load(sys.argv[2])
print(json.dumps({
    "dimensions": [list(new.dimensions), list(old.dimensions)],
    "old_lowest": [v if v == v else None for v in old.runs["lowest_train_loss"]],
    "old_drop": dict(zip(old.runs["run_id"], old.runs["loss_drop"])),
    "labels": [METRICS["lowest_train_loss"][0], METRICS["loss_drop"][0]],
}))
"""


@pytest.mark.slow  # a sweep and its report in a subprocess: kept out of the quick suite
def test_the_readme_recipes_followed_literally(tmp_path):
    """A metric, a metric of the history, a figure and a backend, added by the README's
    blocks alone: one sweep uses the backend, tunes the new metric as its objective, names
    both metrics in its study, and its report, tables and CSVs have each of them."""
    old = tmp_path / "old"  # recorded before the metric existed (the installed package)
    multirun(old, "steps=30", "batch_size=10,100", "seed=0,1", "eval_every=0", "report=false")
    tree = followed(copy_of_the_tree(tmp_path / "tree"))
    sweep = tmp_path / "sweep"
    study = "study={compare:[batch_size],metrics:[loss_drop,lowest_train_loss]}"
    p = in_the_copy(
        tree,
        "run.py",
        "-m",
        "steps=40",
        "batch_size=10,100",
        "seed=0,1",
        "eval_every=20",
        "hydra.launcher.backend=noted_loky",
        "hydra.launcher.n_jobs=2",
        "objective=lowest_train_loss",
        study,
        f"hydra.sweep.dir={sweep}",
    )
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert "noted_loky: 2 workers" in out  # the engine started the launch's workers

    runs = pd.read_parquet(sweep / "runs.parquet").set_index("run_id")
    history = pd.read_parquet(sweep / "history.parquet").groupby("run_id")["train_loss"]
    # the recorded scalar: TrainResult.summary()'s key, a result column
    np.testing.assert_array_equal(runs["lowest_train_loss"], history.min()[runs.index])
    # the history's: computed from history.parquet's rows, a column beside it
    drop = history.first() - history.last()
    np.testing.assert_allclose(runs["loss_drop"], drop[runs.index], rtol=0, atol=0)
    for run_id, value in runs["lowest_train_loss"].items():  # the search's objective
        assert re.search(rf"objective lowest_train_loss {value:.4g}\b", out), run_id

    # Each has its place in summary.csv (15 and 35), its label on the page.
    summary = pd.read_csv(sweep / "summary.csv")
    means = [c for c in summary.columns if f"{c}_lo" in summary.columns]
    assert means[:4] == ["final_train_loss", "lowest_train_loss", "test_accuracy", "test_loss"]
    assert means[4] == "loss_drop"
    html = (sweep / "report.html").read_text()
    assert "lowest train loss" in html and "loss drop" in html
    assert "lowest_train_loss=" not in html and "loss_drop=" not in html  # no config's label

    # The figure: drawn, written, placed after "Test metrics at the end" (order 70).
    assert (sweep / "report" / "lowest_train_loss.png").stat().st_size > 0
    assert (sweep / "report" / "lowest_train_loss.svg").exists()
    titles = re.findall(r'alt="([^"]+)"', html)
    assert titles.index("Lowest train loss") == titles.index("Test metrics at the end") + 1

    # Read back by the notebook API: neither is a swept dimension; an older record is
    # still valid (no value), and the history's metric is measured for it too.
    p = in_the_copy(tree, "-c", READ_BACK, str(sweep), str(old))
    assert p.returncode == 0, p.stderr[-3000:]
    back = json.loads(p.stdout)
    assert back["dimensions"] == [["batch_size", "seed"]] * 2  # the config columns varied
    assert back["old_lowest"] == [None] * 4
    assert back["labels"] == ["lowest train loss", "loss drop"]
    for run_id, value in back["old_drop"].items():
        loss = records.read_history(records.run_dir(old, run_id))["train_loss"]
        assert value == loss.iloc[0] - loss.iloc[-1]


def test_each_readme_place_is_found_where_the_readme_says():
    """Each block lands in its file and place: catches a README that names a file or a
    place that moved (core/train.py once held TrainResult.summary())."""
    from mlpsweep.records import RunMetrics

    blocks = recipe_blocks(REPO / "README.md")
    assert len(blocks) == 7
    written = {}
    for path, where, code in blocks:
        source = written.get(path) or (REPO / path).read_text()
        written[path] = write_block(source, where, code)
        compile(written[path], path, "exec")  # still Python
        before, after = source.splitlines(), written[path].splitlines()
        ops = difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes()
        assert [op for op in ops if op[0] == "delete"] == [], path  # nothing of it lost
        assert all(i2 - i1 <= 1 for tag, i1, i2, *_ in ops if tag == "replace"), path
    fields = ast.parse(written["src/mlpsweep/records/metrics.py"])
    cls = _member(fields, "RunMetrics", None)
    names = [n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)]
    last = RunMetrics.metrics()[-1].name  # after the last declared metric
    assert names[names.index(last) + 1] == "lowest_train_loss"
    engines = _statement(ast.parse(written["src/mlpsweep/launcher/engines.py"]), "ENGINES")
    assert [k.value for k in engines.value.keys] == ["loky", "dask", "noted_loky"]
    figures = _statement(ast.parse(written["src/mlpsweep/report/figures/seed_dots.py"]), "FIGURES")
    assert figures.value.elts[-1].args[0].value == "Lowest train loss"
    measures = _statement(ast.parse(written["src/mlpsweep/report/metrics.py"]), "MEASURES")
    assert [e.id for e in measures.value.elts] == ["OSCILLATION", "LOSS_DROP"]


def test_a_summary_key_that_is_no_metric_fails_loudly():
    metrics = records.RunMetrics("0" * 16, Status.OK)
    with pytest.raises(TypeError, match="weight_norm"):
        metrics.with_results({"weight_norm": np.float64(1.0)})
    assert metrics.with_results({"steps_done": 3}).steps_done == 3


def test_a_metric_is_declared_once():
    """A history metric named like a recorded one would hide it: refused, as is a
    history metric offered as a search's objective (a job returns only its record's)."""
    twice = HistoryMetrics(OSCILLATION.table, (Metric("test_loss", "test loss again"),))
    with pytest.raises(ValueError, match="'test_loss' is declared twice"):
        declared((OSCILLATION, twice))
    with pytest.raises(ValueError, match="only a RunMetrics field"):
        HistoryMetrics(OSCILLATION.table, (Metric("spread2", "spread", objective=True),))


def _tables(n_steps=200):
    rng = np.random.default_rng(0)
    runs = pd.DataFrame({"run_id": ["a", "b"], "status": Status.OK, "seed": [0, 1]})
    history = pd.concat(
        pd.DataFrame(
            {
                "run_id": rid,
                "step": np.arange(1, n_steps + 1),
                "examples_seen": 10 * np.arange(1, n_steps + 1),
                "train_loss": 2.0 * np.exp(-np.arange(n_steps) / 30) + rng.uniform(0, 0.1, n_steps),
            }
        )
        for rid in runs["run_id"]
    )
    return SweepTables(runs, history, [], ("seed",))


def test_the_history_metrics_are_computed_where_collected_and_only_read_after():
    """measure (collect's) adds them once; a second time is refused, not merged into
    spread_x and spread_y; analyse reads what it is given and computes none."""
    tables = _tables()
    measured = measure(tables)
    assert measured.runs["spread"].notna().all()
    with pytest.raises(ValueError, match="the runs have this column already"):
        measure(measured)
    assert analyse(measured).runs["spread"].tolist() == measured.runs["spread"].tolist()
    assert analyse(tables).runs["spread"].isna().all()  # not measured: not made up here
