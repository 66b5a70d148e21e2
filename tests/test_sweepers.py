"""Past the grid: Hydra's Optuna sweeper tunes the task's objective, Hydra's basic
sweeper plans (checks every job, writes the manifest) before its first job, and both
resume."""

import math
import signal
import subprocess

import pytest
from helpers import REPO, finished_runs, multirun, page_text, run_cli, start_app, wait_for

from mlpsweep import records
from mlpsweep.app.task import RunOutcome

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")


def optuna_with(*space):
    """OPTUNA with `space`, less OPTUNA's fixed values of the knobs `space` names (a knob
    searched and fixed at once is refused)."""
    keys = {a.split("=", 1)[0] for a in space}
    return [*(a for a in OPTUNA if a.split("=", 1)[0] not in keys), *space]


OPTUNA = [
    "hydra/sweeper=optuna",
    "lr=interval(0.01,0.5)",
    "hydra.sweeper.n_trials=4",
    "hydra.sweeper.sampler.seed=0",
    "steps=30",
    "depth=1",
    "width=32",
]


@pytest.mark.slow  # a 12-trial Optuna search with its report
def test_optuna_tunes_the_objective_and_a_rerun_reuses_its_records(tmp_path):
    sweep = tmp_path / "sweep"
    multirun(sweep, *OPTUNA)
    manifest = records.SweepManifest.read(sweep)
    assert manifest.sweeper == "optuna" and manifest.objective == "test_loss"
    assert len(manifest.runs) == 4
    assert (sweep / "optimization_results.yaml").exists()
    html = (sweep / "report.html").read_text()
    assert "The search (optuna, 4 trials, test loss minimised) found best" in page_text(html)
    assert (sweep / "report" / "search.svg").exists()
    best = float(
        (sweep / "optimization_results.yaml").read_text().split("best_value:")[1].split()[0]
    )
    losses = [records.read_metrics(records.run_dir(sweep, r)).test_loss for r in manifest.run_ids]
    assert best == pytest.approx(min(losses))  # the sweeper optimised what the task returned
    before = {p.parent.name: p.stat().st_mtime_ns for p in finished_runs(sweep)}
    multirun(sweep, *OPTUNA)  # the same sampler seed proposes the same trials: all reused
    after = {p.parent.name: p.stat().st_mtime_ns for p in finished_runs(sweep)}
    assert after == before


def test_a_run_without_its_objective_returns_the_worst_value():
    from mlpsweep.app.spec import RunSpec
    from mlpsweep.app.task import objective

    class Spec:
        objective = "test_accuracy"

    ok = records.RunMetrics("r", "ok", test_accuracy=0.9, test_loss=0.3)
    assert objective(Spec, ok) == 0.9
    assert objective(Spec, records.RunMetrics("r", "failed")) == -math.inf
    Spec.objective = "steps_to_target"  # a target not reached
    assert objective(Spec, ok) == math.inf
    assert float(RunOutcome("r", "ok", "x", objective=0.25)) == 0.25
    assert RunSpec.__dataclass_fields__["objective"].default == "test_loss"


def test_the_basic_sweeper_refuses_a_bad_value_before_training_anything(tmp_path):
    sweep = tmp_path / "sweep"
    with pytest.raises(SystemExit) as e:
        multirun(sweep, "hydra/sweeper=basic", "lr=0.1,-1", "steps=5")
    assert e.value.code == 2
    assert not finished_runs(tmp_path) and not (sweep / "sweep.json").exists()


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_an_optuna_sweep_with_a_bad_fixed_value_trains_nothing(tmp_path):
    sweep = tmp_path / "sweep"
    with pytest.raises(SystemExit) as e:
        multirun(sweep, *OPTUNA, "steps=-5")
    assert e.value.code == 2 and not finished_runs(tmp_path)


@pytest.mark.parametrize(
    "space, line",
    [
        # what scores the trials is not searched: Optuna would compare a loss with an accuracy
        ("objective=choice(test_loss,test_accuracy)", "objective: searched by"),
        ("target=choice(test_accuracy:0.5,test_accuracy:0.9)", "target: searched by"),
        # every choice, and each end of an interval or a range, is a value a run takes
        ("lr=interval(-1.0,0.5)", "lr=-1.0: must be > 0"),
        ("batch_size=choice(10,0)", "batch_size=0: must be an integer >= 1"),
        ("width=range(0,64,16)", "width=0: must be an integer >= 1"),
        (
            "optimizer=choice(sgd,nope)",
            "it may propose optimizer=nope: no such optimizer (available: adagrad",
        ),
        # Optuna searches no glob of config-group options: the line lists them instead
        (
            "optimizer=glob(*,exclude=sgd)",
            "optimizer=glob(*,exclude=sgd): glob is not supported by hydra/sweeper=optuna: "
            "list the options with choice(...), e.g. "
            "optimizer=choice(adagrad,adam,momentum,nesterov,rmsprop)",
        ),
        # a float step makes Optuna propose floats, which an integer knob refuses (the
        # error's own lines, OmegaConf's full_key and object_type, are left out)
        (
            "batch_size=range(10,100,step=0.5)",
            "it may propose batch_size=10.0: Value '10.0' of type 'float' could not be "
            "converted to Integer; batch_size is an integer",
        ),
        ("lr=range(0.1,0.01,step=-0.01)", "its step must be > 0, e.g. lr=range(0.01,0.1,"),
    ],
)
def test_an_optuna_search_space_that_cannot_be_searched_is_refused_before_a_trial(
    tmp_path, capsys, space, line
):
    with pytest.raises(SystemExit) as e:
        multirun(tmp_path / "sweep", *optuna_with(*space.split()))
    err = capsys.readouterr().err
    assert e.value.code == 2 and line in err, err
    assert err.startswith("mlpsweep: ") and err.count("\n") == 1, err  # one line alone
    assert not finished_runs(tmp_path) and not (tmp_path / "sweep").exists()


def test_a_range_is_checked_at_the_ends_the_optuna_sweeper_proposes(tmp_path, capsys):
    # hydra-optuna-sweeper 1.2 reads a range with its stop (Hydra's grid does not), 1.4's
    # without: the check asks the installed plugin, so it refuses 5000 where it is proposed.
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from mlpsweep.launcher.hydra_compat import optuna_distribution

    space = "batch_size=range(1000,5000,1000)"
    [override] = OverridesParser.create().parse_overrides([space])
    high = optuna_distribution(override).high
    assert high in (4000, 5000)
    if high == 4000:  # every value it proposes is a batch size the train set holds
        return
    with pytest.raises(SystemExit) as e:
        multirun(tmp_path / "sweep", *OPTUNA, space)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "it may propose batch_size=5000: must be" in err, err
    assert err.count("\n") == 1 and not finished_runs(tmp_path)


def test_a_knob_that_only_some_group_options_have_is_named_with_the_options_to_search_it(
    tmp_path, capsys
):
    with pytest.raises(SystemExit) as e:
        multirun(
            tmp_path / "sweep",
            *OPTUNA,
            "optimizer=choice(momentum,sgd,nesterov)",
            "optimizer.momentum=interval(0.1,0.9)",
        )
    # Every trial proposes every knob: with sgd, optimizer.momentum does not exist.
    err = capsys.readouterr().err
    assert e.value.code == 2 and not finished_runs(tmp_path) and err.count("\n") == 1, err
    assert err.startswith(
        "mlpsweep: optimizer.momentum=interval(0.1,0.9): it may propose optimizer.momentum=0.1 "
        "with optimizer=sgd: unknown key 'momentum'"
    ), err
    assert err.endswith(
        "search optimizer.momentum in a sweep of its own, with optimizer=momentum or "
        "optimizer=nesterov\n"
    ), err


def test_an_unexpected_error_before_the_first_trial_is_not_swallowed_by_hydra(
    tmp_path, capsys, monkeypatch
):
    # Hydra runs callbacks under `except Exception` and only warns: an error in the
    # search-space check must still end the sweep (one line, exit 2), not let it train.
    from mlpsweep.app import sweep_start

    def broken(*args):
        raise RuntimeError("the check itself broke")

    monkeypatch.setattr(sweep_start, "check_proposals", broken)
    with pytest.raises(SystemExit) as e:
        multirun(tmp_path / "sweep", *OPTUNA)
    err = capsys.readouterr().err
    assert e.value.code == 2 and not finished_runs(tmp_path)
    assert err.startswith("mlpsweep: the check itself broke") and err.count("\n") == 1, err


@pytest.mark.parametrize("params", ["{lr:'interval(0.01,0.1)'}", "{lr:interval(0.01,0.1)}"])
def test_sweeper_params_as_a_dict_on_the_command_line_names_the_overrides_to_give(tmp_path, params):
    # Hydra merges the dict into the sweeper's params, None by default: OmegaConf fails
    # ('NoneType' object has no attribute 'get'), whatever the dict holds.
    p = run_cli(tmp_path, "-m", "hydra/sweeper=optuna", f"hydra.sweeper.params={params}")
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith(
        f"mlpsweep: hydra.sweeper.params={params}: Hydra cannot merge into "
        "hydra.sweeper.params from the command line"
    ), p.stderr
    assert "give each searched knob as an override of its own, lr=interval(0.01,0.1)" in p.stderr
    assert not finished_runs(tmp_path)


def test_the_tuning_study_chooses_the_optuna_sweeper_itself(tmp_path):
    p = run_cli(tmp_path, "+sweep=lr_tune", "--cfg", "hydra", "-p", "hydra.sweeper._target_")
    assert p.returncode == 0 and "OptunaSweeper" in p.stdout, p.stderr
    p = run_cli(tmp_path, "+sweep=seeds", "--cfg", "hydra", "-p", "hydra.sweeper._target_")
    assert p.returncode == 0 and "MlpsweepSweeper" in p.stdout, p.stderr  # the others: ours
    # The command line's sweeper wins; lr_tune's Optuna settings then name the one to use.
    p = run_cli(tmp_path, "-m", "hydra/sweeper=basic", "+sweep=lr_tune")
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith(
        "mlpsweep: hydra.sweeper.direction: hydra/sweeper=basic has no such setting (set by "
        "sweep/lr_tune); it is hydra/sweeper=optuna's: run with hydra/sweeper=optuna"
    ), p.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow  # two Optuna trials and a report
def test_the_tuning_study_runs_as_its_header_says_without_naming_the_sweeper(tmp_path):
    header = (REPO / "sweeps" / "lr_tune.yaml").read_text().splitlines()[1]
    assert header == "# python run.py -m +sweep=lr_tune"
    sweep = tmp_path / "sweep"
    multirun(
        sweep,
        "+sweep=lr_tune",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=1",
        "steps=3",
        "depth=1",
        "width=32",
    )
    manifest = records.SweepManifest.read(sweep)
    assert manifest.sweeper == "optuna" and len(manifest.runs) == 2


@pytest.mark.slow  # four Optuna trials
def test_a_valid_search_space_with_log_and_int_dimensions_passes_the_check(tmp_path):
    # The same check on spaces that are fine: nothing refused, the trials run.
    space = ["lr=tag(log,interval(0.01,0.5))", "width=int(interval(8,32))", "steps=3"]
    multirun(tmp_path / "sweep", *optuna_with(*space))
    assert len(finished_runs(tmp_path)) == 4


@pytest.mark.slow
@pytest.mark.e2e
def test_a_submitit_job_killed_is_a_failed_run_and_resume_retrains_only_it(tmp_path):
    """hydra/launcher=submitit_local (SLURM's launcher, run locally): one job's process
    SIGKILLed as the OOM killer or a preemption would. The others finish, the report is
    built, exit 1 names the failed run; resume=true trains only that one."""
    import json
    import os

    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    slurm = [  # the README's SLURM settings that submitit's local executor takes too
        "hydra.launcher.timeout_min=60",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=4",
        "blas_threads=1",
    ]
    args = ["-m", "hydra/launcher=submitit_local", *slurm, "seed=range(3)", "steps=3000"]
    proc = start_app(tmp_path, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    claims = lambda: list(tmp_path.glob("results/adhoc/*/claims/*.json"))  # noqa: E731
    wait_for(lambda: claims() or proc.poll() is not None, what="a job to claim its run")
    victim = claims()[0]
    wait_for(lambda: victim.stat().st_size > 0, what="the claim's content")
    os.kill(json.loads(victim.read_text())["pid"], signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert "was lost" in out + err and "1 of 3 runs failed" in err and "resume=true" in err
    [sweep] = sorted((tmp_path / "results" / "adhoc").glob("*/"))
    assert (sweep / "report.html").exists()
    statuses = [
        records.read_metrics(records.run_dir(sweep, r))
        for r in records.SweepManifest.read(sweep).run_ids
    ]
    failed = [m for m in statuses if m.status == "failed"]
    assert len(failed) == 1 and failed[0].error == records.WORKER_DIED
    assert sum(m.status == "ok" for m in statuses) == 2
    assert not claims()  # no job left running or holding a claim
    p = run_cli(tmp_path, *args, "resume=true")
    assert p.returncode == 0, p.stderr
    assert "1 to train, 2 already done" in p.stderr + p.stdout


def test_inspecting_the_config_creates_no_folder(tmp_path):
    for args in (
        ["--cfg", "hydra", "--resolve", "-p", "hydra.run.dir"],
        ["--cfg", "hydra", "--resolve", "-p", "hydra.sweep.dir"],
        ["--cfg", "all", "-p", "hydra.sweep.dir"],
    ):
        p = run_cli(tmp_path, *args)
        assert p.returncode == 0 and p.stdout.startswith("results/"), (args, p.stderr)
    assert not (tmp_path / "results").exists()


def test_our_sweeper_plans_the_sweep(tmp_path):
    with pytest.raises(SystemExit) as e:  # every job checked before any starts
        multirun(tmp_path, "hydra/sweeper=mlpsweep", "lr=0.1,-1", "steps=5")
    assert e.value.code == 2 and not finished_runs(tmp_path)


def test_a_missing_plugin_names_the_package_to_install():
    from mlpsweep.app.errors import one_line

    err = Exception(
        "In 'hydra/config': Could not find 'hydra/launcher/submitit_slurm'\n\n"
        "Available options in 'hydra/launcher':\n\tbasic\n\tmlpsweep\nConfig search path:"
    )
    assert one_line(err) == (
        "hydra/launcher=submitit_slurm needs Hydra's plugin hydra-submitit-launcher: pip "
        'install hydra-submitit-launcher (or pip install -e ".[slurm]")'
    )
    err = Exception("Could not find 'optimizer/sgdd'\n\nAvailable options in 'optimizer':\n\tsgd\n")
    assert one_line(err).startswith("optimizer=sgdd: no such optimizer (available: sgd")


def test_the_cli_lists_every_bench_and_a_folder_of_sweeps_names_the_newest(tmp_path, capsys):
    from mlpsweep.bench import parser as bench_parser
    from mlpsweep.cli import build_parser, main

    choices = list(bench_parser()._subparsers._group_actions[0].choices)
    listed = " ".join(build_parser().format_help().split())  # argparse wraps the help
    assert f"mlpsweep bench NAME ({', '.join(choices)})" in listed
    sweep = tmp_path / "results" / "adhoc" / "t1"
    multirun(sweep, "seed=0,1", "steps=5", "report=false")
    assert main(["runs", str(sweep.parent)]) == 2
    assert f"the newest is {sweep}" in capsys.readouterr().err
    assert main(["runs", str(sweep)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "steps to target" not in lines[0]  # a column no run has is left out


@pytest.mark.parametrize(
    "space, line",
    [
        # a fixed value beats the search in Optuna: every trial ran lr=0.5
        (["lr=interval(0.01,0.1)", "lr=0.5"], "lr is searched and fixed at once"),
        (["optimizer=momentum", "optimizer=choice(sgd,adam)"], "optimizer is searched and fixed"),
        # a maximised objective minimised: Optuna's "best" was the worst run
        (
            ["lr=interval(0.01,0.1)", "objective=test_accuracy"],
            "hydra.sweeper.direction=minimize with objective=test_accuracy, which is maximized",
        ),
        (
            ["lr=interval(0.01,0.1)", "hydra.sweeper.direction=maximize"],
            "give hydra.sweeper.direction=minimize",
        ),
    ],
)
def test_a_search_that_would_answer_another_question_is_refused(tmp_path, capsys, space, line):
    with pytest.raises(SystemExit) as e:
        multirun(tmp_path / "sweep", *OPTUNA, *space)
    err = capsys.readouterr().err
    assert e.value.code == 2 and line in err and err.count("\n") == 1, err
    assert not finished_runs(tmp_path)
