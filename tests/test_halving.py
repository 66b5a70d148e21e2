"""Successive halving in our sweeper: rungs at min_steps x eta^k, the best 1/eta configs of
each setting of `within` go on from their checkpoints (never retrained), the others keep
their record at their rung; a sweep killed mid-halving resumes from the rung it reached."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import REPO, multirun, page_text, wait_for

from mlpsweep import records
from mlpsweep.records.checkpoint import checkpoints
from mlpsweep.records.halving import HalvingLog, HalvingSpec
from mlpsweep.records.run import read_config
from mlpsweep.report.halving import promoted, ranking

SPEC = HalvingSpec(metric="test_loss", min_steps=30, eta=3, within="batch_size")
GRID = (
    "lr=0.01,0.1,0.5",
    "batch_size=10,100",
    "seed=0,1",
    "steps=270",
    "eval_every=10",
    "width=32",
    "report=false",
    "halving={metric:test_loss,min_steps:30,eta:3,within:batch_size}",
)


def test_rungs_and_how_many_go_on():
    assert SPEC.rungs(270) == [30, 90, 270] and SPEC.rungs(300) == [30, 90, 270, 300]
    assert [SPEC.keep(n) for n in (1, 2, 3, 4, 9, 10)] == [1, 1, 1, 2, 3, 4]
    for bad, msg in [
        ({"metric": "spread"}, "halving.metric='spread'"),
        ({"eta": 1}, "halving.eta=1"),
        ({"min_steps": 0}, "halving.min_steps=0"),
        ({"min_steps": 50, "max_steps": 40}, "halving.max_steps=40"),
        ({"speed": 1}, "halving.speed: unknown key"),
        ("fast", "halving: must be a mapping"),
    ]:
        with pytest.raises(ValueError, match=msg.replace("(", r"\(")):
            HalvingSpec.from_dict(bad)


def test_the_rule_keeps_the_best_mean_per_setting_and_breaks_ties_by_the_interval():
    rows = [
        # group a: c1 best mean; c2 and c3 tie on the mean, c3 has the narrower interval
        ("a", "c1", [0.10, 0.12]), ("a", "c2", [0.1, 0.3]), ("a", "c3", [0.19, 0.21]),
        ("a", "c4", [0.5, 0.5]),
        # group b: a diverged seed (NaN) makes its config the worst
        ("b", "d1", [0.3, math.nan]), ("b", "d2", [0.9, 0.8]),
    ]  # fmt: skip
    values = pd.DataFrame([{"group": g, "config": c, "value": v} for g, c, vs in rows for v in vs])
    table = ranking(values, SPEC)
    assert table[table.group == "a"]["config"].tolist() == ["c1", "c3", "c2", "c4"]
    assert promoted(values, SPEC) == ["c1", "c3", "d2"]  # ceil(4/3) = 2 of a, 1 of b
    higher = HalvingSpec(metric="test_accuracy", min_steps=30, within="batch_size")
    assert promoted(values, higher)[:2] == ["c4", "c3"]


def test_where_runs_stop_at_a_target_reaching_it_sooner_ranks_first():
    # seeds' test accuracy (value) and the step each stopped at its target (reached)
    rows = [
        ("g", "late", [(0.86, 70), (0.87, 60)]),  # at the target, later
        ("g", "soon", [(0.851, 40), (0.852, 50)]),  # at the target, sooner: best
        ("g", "longer", [(0.93, math.nan), (0.94, math.nan)]),  # trained on, not stopped
        ("g", "half", [(0.95, 30), (0.96, math.nan)]),  # one seed short of it: by accuracy
    ]
    values = pd.DataFrame(
        [{"group": g, "config": c, "value": v, "reached": r} for g, c, vs in rows for v, r in vs]
    )
    spec = HalvingSpec(metric="test_accuracy", min_steps=30, eta=3, within="batch_size")
    table = ranking(values, spec)
    assert table["config"].tolist() == ["soon", "late", "half", "longer"]
    assert table["by"].tolist() == ["steps_to_target"] * 2 + ["test_accuracy"] * 2
    assert table["mean"].tolist()[:2] == [45.0, 65.0]
    assert promoted(values, spec) == ["soon", "late"]


def test_the_page_of_a_stop_at_target_halving_names_its_picks_in_order_by_steps():
    from mlpsweep.report.halving import halving_outcome

    ids = {(b, lr, s): f"r{b}-{lr}-{s}" for b in (16, 2) for lr in (0.1, 1) for s in (0, 1)}
    log = HalvingLog(
        HalvingSpec(metric="test_accuracy", min_steps=10, eta=3, within="batch_size"),
        [10, 30],
        promoted=[list(ids.values())],
        configs={rid: f"batch_size={b} lr={lr}" for (b, lr, _), rid in ids.items()},
    )
    runs, history = [], []
    for rid, label in log.configs.items():
        b, lr = (float(w.split("=")[1]) for w in label.split())
        at = 20 if lr == 1 else None  # lr=1 stops at its target at step 20
        steps = at or 30
        runs.append({"run_id": rid, "batch_size": int(b), "lr": lr, "steps_done": steps,
                     "steps_to_target": at, "paused": False, "stop_at_target": True})  # fmt: skip
        acc = np.linspace(0.5, 0.86 if at else 0.9, steps)  # lr=0.1: higher, but later
        history.append(pd.DataFrame({"run_id": rid, "step": np.arange(steps),
                                     "test_accuracy": acc, "train_loss": 1.0}))  # fmt: skip
    out = halving_outcome(log, pd.DataFrame(runs), pd.concat(history))
    assert list(out.chosen) == ["2", "16"]  # by value, not as text
    assert [(c, m, by) for c, m, _, by in out.chosen.values()] == [
        ("batch_size=2 lr=1", 20.0, "steps_to_target"),
        ("batch_size=16 lr=1", 20.0, "steps_to_target"),
    ]
    sentence = out.sentence()
    assert "batch_size=2: lr=1 (steps to target 20 ± 0)" in sentence and "inf" not in sentence
    assert "the full grid would take fewer than 240 (every run to 30)" in sentence
    assert out.tried_lrs == {2.0: [0.1, 1.0], 16.0: [0.1, 1.0]}


def run_table(sweep):
    out = {}
    for p in sorted((sweep / "runs").iterdir()):
        m = records.read_metrics(p)
        out[p.name] = (m.steps_done, m.paused, (p / "history.parquet").read_bytes())
    return out


@pytest.mark.slow
def test_a_halving_sweep_promotes_from_checkpoints_and_keeps_the_others(tmp_path, capsys):
    sweep = tmp_path / "h"
    returns = multirun(sweep, *GRID)
    assert [len(b) for b in returns] == [12, 4, 4]  # each rung a batch: 12, then 2 configs x 2
    log = HalvingLog.read(sweep)
    assert log.rungs == [30, 90, 270] and len(log.promoted) == 2
    table = run_table(sweep)
    steps = sorted(s for s, _, _ in table.values())
    assert steps == [30] * 8 + [270] * 4
    # the promoted ones: continued, not retrained; the others paused at rung 1
    for rid, (done, paused, _) in table.items():
        assert paused == (done == 30) and log.rung_of(rid) == (2 if done == 270 else 0)
        assert checkpoints(sweep / "runs" / rid) == []
    # each batch size keeps its own best lr by the mean test loss at 30 steps
    histories = {rid: records.read_history(sweep / "runs" / rid) for rid in table}
    by_config = {}
    for rid, label in log.configs.items():
        by_config.setdefault(label, []).append(histories[rid]["test_loss"].to_numpy()[29])
    for bs in ("10", "100"):
        mine = {c: np.mean(v) for c, v in by_config.items() if f"batch_size={bs}" in c.split()}
        best = min(mine, key=mine.get)
        assert {log.configs[r] for r in log.promoted[0]} & set(mine) == {best}
    # Sweep.runs says each run's rung; the page opens with the picks and the compute
    from mlpsweep.report.build import build_report
    from mlpsweep.report.results import load

    runs = load(sweep).runs.set_index("run_id")
    assert all(runs.loc[r, "rung"] == log.rung_of(r) for r in table)
    html = build_report(sweep).read_text()
    opening = html[html.index("Successive halving chose") :][:600]
    assert "It trained 1,320 steps, 41% of the full grid&#39;s 3,240" in opening
    assert opening.count("batch_size=") >= 2 and "lr=" in opening
    assert (sweep / "report" / "successive_halving.png").stat().st_size > 10_000
    from mlpsweep.cli import main

    capsys.readouterr()
    assert main(["runs", str(sweep)]) == 0  # the runs stopped at a rung say so
    listing = capsys.readouterr().out
    assert "paused at" in listing and listing.count("30 steps") == 4
    # and a promoted run's record is bitwise the record of the same run trained straight
    straight = tmp_path / "s"
    rid = log.promoted[-1][0]
    seed = read_config(sweep / "runs" / rid)["seed"]
    label = [*log.configs[rid].split(), f"seed={seed}", *GRID[3:6]]
    [[one]] = multirun(straight, *label, "report=false")
    assert one.return_value.run_id == rid
    assert (straight / "runs" / rid / "history.parquet").read_bytes() == table[rid][2]


@pytest.mark.slow
def test_a_halving_sweep_killed_mid_rung_resumes_from_the_rung_it_reached(tmp_path):
    """SIGKILL once the second rung has begun (a run has reached 90 steps); resume=true
    launches only what is left, and the result equals an uninterrupted halving sweep's."""
    multirun(tmp_path / "ref", *GRID)
    sweep = tmp_path / "killed"
    args = [sys.executable, str(REPO / "run.py"), "-m", *GRID, "hydra/launcher=basic"]
    args += [f"hydra.sweep.dir={sweep}", "resume=true", "checkpoint_every=10"]
    proc = subprocess.Popen(args, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def second_rung_begun():
        return proc.poll() is not None or any(
            (records.read_metrics(p) or records.RunMetrics("", "ok")).steps_done == 90
            for p in (sweep / "runs").glob("*")
        )

    wait_for(second_rung_begun, timeout=300, what="the second rung")
    assert proc.poll() is None, "the sweep ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = run_table(sweep)
    rung1 = {r for r, (done, _, _) in before.items() if done == 30}
    # the killed sweep's page: no config at the end yet, said, and the runs where they are
    from mlpsweep.report.build import build_report

    page = page_text(build_report(sweep).read_text())
    assert "Halving is unfinished: no config has been trained to the end yet" in page
    assert "-inf" not in page and "± inf" not in page
    for report_file in ("report.html", "summary.csv", "contrasts.csv", "importance.csv"):
        (sweep / report_file).unlink(missing_ok=True)  # the resumed sweep writes its own
    shutil.rmtree(sweep / "report", ignore_errors=True)
    again = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    out = again.stdout + again.stderr
    assert "halving rung 1 of 3 (30 steps): 12 runs, 0 to train" in out
    assert "there already" in out  # the run(s) at 90 are not launched again
    after = run_table(sweep)
    assert after == run_table(tmp_path / "ref")
    for rid in rung1 - set(HalvingLog.read(sweep).promoted[0]):
        assert after[rid] == before[rid]  # kept as they were, not rewritten
    assert json.loads((sweep / "halving.json").read_text())["rungs"] == [30, 90, 270]


@pytest.mark.parametrize(
    "block, message",
    [
        ("{metric:test_loss,min_steps:3,within:nope}", "halving.within=nope: not a setting"),
        (
            "{metric:test_loss,min_steps:3,max_steps:20}",
            "every run must train halving.max_steps=20",
        ),
        ("{metric:spread}", "halving.metric='spread': must be one of"),
    ],
)
def test_a_bad_halving_block_is_one_line_before_any_run(tmp_path, capsys, block, message):
    with pytest.raises(SystemExit) as exit_:
        multirun(tmp_path / "s", "lr=0.1,0.2", "steps=10", "eval_every=1", f"halving={block}")
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "s" / "runs").exists()


def test_the_page_compares_whole_configs_and_chooses_by_halvings_metric():
    from mlpsweep.report.halving import finished_configs, halving_study
    from mlpsweep.report.study import Study

    log = HalvingLog(
        SPEC,
        [30, 90, 270],
        configs={"a0": "lr=0.1", "a1": "lr=0.1", "b0": "lr=0.3", "b1": "lr=0.3"},
    )
    # lr=0.3: one seed reached its target early, the other was stopped at a rung
    runs = pd.DataFrame({"run_id": ["a0", "a1", "b0", "b1"],
                         "paused": [False, False, False, True]})  # fmt: skip
    assert finished_configs(runs, log)["run_id"].tolist() == ["a0", "a1"]
    study = halving_study(Study(), log, ["batch_size", "lr", "width", "seed"])
    assert study.compare == ("batch_size",) and study.nuisance == ("lr", "width")
    assert study.select_by == "test_loss"
    assert study.select_note == "by test loss, halving's objective"
    declared = Study(compare=("batch_size",), metrics=("steps_to_target",), declared=True)
    assert halving_study(declared, log, ["batch_size", "lr", "seed"]) == declared


@pytest.mark.parametrize(
    "block, says",
    [
        ("{metric: test_loss, min_steps: 270}", "halving.min_steps=270: must be below"),
        ("{metric: test_loss, within: seed}", "halving.within=seed: the replicate"),
    ],
)
def test_a_halving_that_could_not_halve_is_refused_before_anything_is_written(
    tmp_path, block, says
):
    from helpers import run_cli

    grid = [g for g in GRID if not g.startswith("halving=")]
    p = run_cli(tmp_path, "-m", *grid, f"halving={block}", "hydra.sweep.dir=s")
    assert p.returncode == 2 and says in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert not (tmp_path / "s").exists()


def test_halving_under_another_sweeper_is_refused_not_ignored(tmp_path):
    from helpers import run_cli

    p = run_cli(tmp_path, "-m", "hydra/sweeper=basic", *GRID, "hydra.sweep.dir=s")
    assert p.returncode == 2, p.stderr
    assert "halving: only mlpsweep's own sweeper halves (hydra/sweeper=basic" in p.stderr
    assert not (tmp_path / "s").exists()


def test_a_folder_named_like_a_checkpoint_is_left_alone_when_checkpoints_go(tmp_path):
    from mlpsweep.records.checkpoint import remove_checkpoints

    (tmp_path / "checkpoint-000000020.npz").mkdir()
    (tmp_path / "checkpoint-000000010.npz").write_bytes(b"x")
    remove_checkpoints(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-000000020.npz"]


def test_a_pick_with_no_value_or_one_seed_says_so_not_inf():
    from mlpsweep.report.halving import HalvingOutcome

    log = HalvingLog(SPEC, [30, 90, 270])
    out = HalvingOutcome(
        log,
        {
            "10": ("batch_size=10 lr=1", math.inf, math.inf, "test_loss"),
            "100": ("batch_size=100 lr=0.1", 0.25, math.inf, "test_loss"),
        },  # fmt: skip
        steps=100,
        full_steps=1000,
        curves=pd.DataFrame(),
    )
    sentence = out.sentence()
    assert "batch_size=10: none (no config has a value at the last rung" in sentence
    assert "batch_size=100: lr=0.1 (test loss 0.25, one seed: no interval)" in sentence
    assert "inf" not in sentence


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_resuming_with_another_halving_block_is_refused(tmp_path):
    from helpers import run_cli

    grid = [g for g in GRID if not g.startswith("halving=")]
    block = "halving={metric:test_loss,min_steps:30,eta:3,within:batch_size}"
    multirun(tmp_path / "s", *grid, "steps=90", block)
    other = block.replace("eta:3", "eta:2")
    p = run_cli(tmp_path, "-m", *grid, "steps=90", other, "resume=true", "hydra.sweep.dir=s")
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert "halving: this sweep was halved with {metric: test_loss, min_steps: 30, eta: 3" in (
        p.stderr
    )
    again = run_cli(tmp_path, "-m", *grid, "steps=90", block, "resume=true", "hydra.sweep.dir=s")
    assert again.returncode == 0, again.stderr


def test_paused_runs_without_a_halving_record_are_left_out_or_said():
    from mlpsweep.report.halving import paused_without_halving

    runs = pd.DataFrame({"run_id": list("abc"), "paused": [True, False, True],
                         "steps_done": [30, 270, 30]})  # fmt: skip
    kept, note = paused_without_halving(runs)
    assert kept["run_id"].tolist() == ["b"]
    assert note.startswith("2 runs paused before their last step (at 30 steps")
    every = runs.assign(paused=True, steps_done=170)
    kept, note = paused_without_halving(every)
    assert len(kept) == 3 and note.startswith("Every run is paused before its last step (at 170")
    plain = runs.assign(paused=False)
    kept, note = paused_without_halving(plain)
    assert kept is plain and note == ""


@pytest.mark.slow
def test_a_stopped_run_promoted_after_its_sweep_ended_says_it_trains_from_step_0(tmp_path):
    grid = [g for g in GRID if not g.startswith(("halving=", "lr="))]
    block = "halving={metric:test_loss,min_steps:30,eta:3,within:batch_size}"
    sweep = tmp_path / "s"
    multirun(sweep, *grid, "lr=0.01,0.1,0.5", "steps=90", block)
    stopped = {r for r, (done, paused, _) in run_table(sweep).items() if paused}
    # a new lr changes which configs go on: some stopped ones now do, with no checkpoint
    multirun(sweep, *grid, "lr=0.01,0.1,0.5,5e-5", "steps=90", block,
             "resume=true", "extend=true")  # fmt: skip
    retrained = {r for r, (done, _, _) in run_table(sweep).items() if done == 90} & stopped
    logs = {r: (sweep / "runs" / r / "job.log").read_text() for r in retrained}
    said = {r for r, text in logs.items() if "paused at step 30 with no checkpoint left" in text}
    assert retrained and said == retrained
