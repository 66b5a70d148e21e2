"""The README's recipes (Architecture: "Adding a metric, a figure, a backend"), followed
here as a newcomer would: each is a change in one place, and the rest of the harness
picks it up."""

import dataclasses
import re

import numpy as np
import pytest
from helpers import multirun

from mlpsweep import records
from mlpsweep.core.status import Status
from mlpsweep.records import run as run_records
from mlpsweep.report.analysis import analyse
from mlpsweep.report.build import build_report
from mlpsweep.report.collect import collect


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    sweep = tmp_path_factory.mktemp("recipes") / "sweep"
    multirun(sweep, "steps=20", "batch_size=10,100", "seed=0,1", "eval_every=0", "report=false")
    return sweep


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_a_new_metric_is_a_result_column_never_a_swept_dimension(small_sweep, monkeypatch):
    """Recipe: a field on RunMetrics (records/metrics.py), set from TrainResult.summary()."""
    Extended = dataclasses.make_dataclass(
        "RunMetrics", [("weight_norm", float | None, None)], bases=(records.RunMetrics,)
    )
    monkeypatch.setattr(run_records, "RunMetrics", Extended)
    manifest = records.SweepManifest.read(small_sweep)
    for k, planned in enumerate(manifest.runs):  # a value that differs in every run
        run_dir = records.run_dir(small_sweep, planned.run_id)
        old = records.read_metrics(run_dir)  # written without the field: still valid
        assert old is not None and old.weight_norm is None
        metrics = Extended(**dataclasses.asdict(old)).with_results({"weight_norm": 1.0 + k})
        history = records.read_history(run_dir)
        record = records.RunRecord(
            run_records.read_config(run_dir),
            metrics,
            history={c: history[c].to_numpy() for c in history},
        )
        records.write_run(run_dir, record)
    tables = collect(small_sweep, write=False)
    assert sorted(tables.runs["weight_norm"]) == [1.0, 2.0, 3.0, 4.0]  # read back, a column
    assert "weight_norm" not in tables.config_columns
    assert analyse(tables).dims == ["batch_size"]  # the seeds are replicates
    html = build_report(small_sweep).read_text()
    assert "weight_norm=" not in html  # no config is labelled by it


def test_a_summary_key_that_is_no_metric_fails_loudly():
    metrics = records.RunMetrics("0" * 16, Status.OK)
    with pytest.raises(TypeError, match="weight_norm"):
        metrics.with_results({"weight_norm": np.float64(1.0)})
    assert metrics.with_results({"steps_done": 3}).steps_done == 3


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_a_new_figure_is_one_entry_in_its_family(small_sweep, monkeypatch):
    """Recipe: a FigureSpec in the FIGURES of its family's module (report/figures/)."""
    from mlpsweep.report.figures import FigureSpec, seeds
    from mlpsweep.report.plotting import subplots

    def draw(ctx):
        fig, ax = subplots(1, 1, figsize=(4, 3))
        done = ctx.analysis.finished
        ax.scatter(done["batch_size"], done["steps_per_s"])
        return fig

    spec = FigureSpec(
        "Speed per batch size",
        order=75,  # after "Test metrics at the end" (70)
        applies=lambda ctx: "steps_per_s" in ctx.analysis.runs,
        draw=draw,
        caption="Training steps per second of each run.",
        more=True,
    )
    monkeypatch.setattr(seeds, "FIGURES", (*seeds.FIGURES, spec))
    html = build_report(small_sweep).read_text()
    assert (small_sweep / "report" / "speed_per_batch_size.png").stat().st_size > 0
    assert (small_sweep / "report" / "speed_per_batch_size.svg").exists()
    assert "Training steps per second of each run." in html
    titles = re.findall(r'alt="([^"]+)"', html)
    assert titles.index("Speed per batch size") == titles.index("Test metrics at the end") + 1


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_a_new_backend_is_one_engine(tmp_path, monkeypatch):
    """Recipe: an Engine subclass registered in launcher/engines.py's ENGINES."""
    from mlpsweep.launcher import engines

    started = []

    class CountingEngine(engines.LokyEngine):  # loky's workers, counted as they start
        def start(self, launcher, context, n_jobs):
            started.append(n_jobs)
            return super().start(launcher, context, n_jobs)

    monkeypatch.setitem(engines.ENGINES, "counting", CountingEngine)
    sweep = tmp_path / "sweep"
    args = ("hydra.launcher.backend=counting", "hydra.launcher.n_jobs=2", "seed=0,1,2")
    multirun(sweep, *args, "steps=5", "report=false")
    assert started  # the launch asked this engine for its workers
    runs = records.SweepManifest.read(sweep).run_ids
    assert len(runs) == 3 and all(records.is_finished(records.run_dir(sweep, r)) for r in runs)
