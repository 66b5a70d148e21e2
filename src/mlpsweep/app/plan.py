"""Before any job of a sweep starts: compose and validate every job, check the sweep
folder, write its manifest, and leave out the runs that are already finished.

Our sweeper (hydra/sweeper=mlpsweep) calls plan_sweep, so this happens whatever launcher
then runs the jobs. Nothing is written before every job has passed its checks.
"""

import logging
import sys
from pathlib import Path

from mlpsweep import records
from mlpsweep.app.callbacks import preload_report
from mlpsweep.app.errors import BadInput
from mlpsweep.app.resources import check_memory, concurrent_runs
from mlpsweep.app.spec import CONTROL_KEYS, expected_cost, run_spec
from mlpsweep.core.checks import ConfigError
from mlpsweep.data.idx import DatasetError
from mlpsweep.launcher.compose import JobComposer, task_container
from mlpsweep.provenance import code_version, harness_version
from mlpsweep.records import layout
from mlpsweep.records.checkpoint import remove_checkpoints

log = logging.getLogger("mlpsweep")


def plan_sweep(config, config_loader, jobs) -> list[list[str]]:
    """The jobs (override lists) to launch, longest first; [] when none is left.
    `valid` (if given) is called once the first job has composed and validated: most
    bad input (a bad key or value on the command line) fails there, before it."""
    sweep_dir = Path(config.hydra.sweep.dir)
    try:
        specs = compose_all(JobComposer(config_loader, config), jobs)
    except BaseException:
        remove_if_empty(sweep_dir)
        raise
    if not jobs:
        remove_if_empty(sweep_dir)
        raise BadInput("the sweep has no jobs: a swept value list is empty (e.g. seed=range(0))")
    try:
        max_memory = config.get("max_memory", "auto")
        check_memory(specs, concurrent_runs(config.hydra, len(specs)), max_memory)
        study = check_study(config, config_keys(specs[0]))
        if not config.get("extend", False):  # (an extension's runs join others')
            check_answerable(study, specs)
    except (ConfigError, ValueError) as e:
        remove_if_empty(sweep_dir)
        raise BadInput(str(e)) from None
    unique, job_of = {}, {}  # run_id -> RunSpec, and the job (overrides) that runs it
    for overrides, spec in zip(jobs, specs):
        unique.setdefault(spec.run_id, spec)
        job_of.setdefault(spec.run_id, list(overrides))
    with planning_lock(sweep_dir, bool(config.get("dry_run", False))):
        listed = check_definition(sweep_dir, unique, bool(config.get("extend", False)))
        dry = bool(config.get("dry_run", False))
        pending = unfinished(sweep_dir, unique.values(), config.get("pause_at"), tidy=not dry)
        if dry:
            dry_run(sweep_dir, unique, pending)
            return []
        if config.get("resume", False) and not records.SweepManifest.exists(sweep_dir):
            log.info(f"resume=true: no earlier sweep under {sweep_dir.parent}; starting a new one")
        planned = [*listed, *(records.PlannedRun(s.run_id, s.overrides) for s in unique.values())]
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
        old = (
            records.SweepManifest.read(sweep_dir)
            if records.SweepManifest.exists(sweep_dir)
            else None
        )
        if old is not None:  # resumed: the sweep stays the command that made it (and extended it)
            grew = set(unique) - set(old.run_ids)
            command = f"{old.command} ; extended by: {command}" if grew else old.command
        records.SweepManifest(
            runs=planned,
            command=command,
            cwd=str(Path.cwd()),
            sweep_name=str(config.get("sweep_name", "adhoc")),
            code=code_version(),
            data={s.identity.dataset: s.identity.data_fingerprint for s in unique.values()},
            study=study,
            harness=harness_version(),
            **({"sweep_id": old.sweep_id} if old is not None else {}),
        ).write(sweep_dir)
    done = len(unique) - len(pending)
    runs = f"{len(unique)} run{'s' if len(unique) != 1 else ''}"
    log.info(f"{runs} in {sweep_dir}: {len(pending)} to train, {done} already done")
    if pending and config.get("report", True):
        preload_report()
    # Longest first: the short jobs then fill the gaps at the end instead of one long job
    # running alone on one core. The order cannot change any run's numbers.
    pending.sort(key=expected_cost, reverse=True)
    return [job_of[s.run_id] for s in pending]


def unfinished(sweep_dir, specs, pause_at, tidy=True) -> list:
    """The specs whose runs are not finished. With `tidy`, a finished (not paused) run's
    leftover checkpoints go: a job killed between writing its record and removing them
    leaves them, and no job of this sweep will reach that run again to remove them."""
    pending = []
    for spec in specs:
        run_dir = records.run_dir(sweep_dir, spec.run_id)
        metrics = records.read_metrics(run_dir)
        if not records.reached(metrics, pause_at):
            pending.append(spec)
        elif tidy and metrics is not None and not metrics.paused:
            remove_checkpoints(run_dir)
    return pending


def planning_lock(sweep_dir, dry):
    """The sweep folder's lock around reading and writing its manifest (two commands
    extending one sweep at once both keep their runs); none for a dry run, which
    writes nothing."""
    import contextlib

    if dry:
        return contextlib.nullcontext()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    try:
        return records.manifest_lock(sweep_dir)
    except OSError as e:
        raise BadInput(f"{sweep_dir}: cannot lock the sweep folder ({e.strerror or e})") from None


def config_keys(spec):
    """The setting names a report sees for a run: its config keys, groups dotted."""
    return [
        f"{k}.{sub}" if isinstance(v, dict) else k
        for k, v in spec.config.items()
        for sub in (v if isinstance(v, dict) else [None])
    ]


def check_answerable(study: dict, specs) -> None:
    """ValueError (one line) for a study that compares a setting this sweep does not
    vary: its question has no answer, however long the runs train."""
    values: dict = {}
    for spec in specs:
        for key, value in flat_config(spec.config).items():
            values.setdefault(key, set()).add(repr(value))
    for name in study.get("compare") or ():
        seen = values.get(name, set())
        if len(seen) < 2:
            one = f" (only {next(iter(seen))})" if seen else ""
            raise ValueError(
                f"study.compare: {name!r} takes one value in this sweep{one}, so the study's "
                f"question cannot be answered: sweep it ({name}=a,b) or leave it out of compare"
            )


def flat_config(config, prefix=""):
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_study(config, known=None):
    """The sweep's study declaration as a plain dict (ValueError, one line, if it is not
    one, or names a setting the runs do not have: `known`, their config keys)."""
    from omegaconf import OmegaConf

    from mlpsweep.report.metrics import METRICS
    from mlpsweep.report.study import KEYS, Study

    study = config.get("study")
    if study is None:
        return {}
    plain = OmegaConf.to_container(study, resolve=True) if OmegaConf.is_config(study) else study
    if not isinstance(plain, dict):
        raise ValueError(f"study: must be a mapping with keys {', '.join(KEYS)}")
    study = Study.from_dict(plain, known_metrics=list(METRICS))
    if known is not None:
        study.check_names(set(known))
    return plain


def compose_all(composer, jobs):
    """A RunSpec per job; BadInput naming the first bad job (and how many more)."""
    specs, errors = [], []
    for overrides in jobs:
        try:
            spec = run_spec(task_container(composer.task(overrides)), tuple(overrides))
        except (ConfigError, DatasetError) as e:
            job = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in CONTROL_KEYS]
            errors.append(f"{e} (job: {' '.join(job) or 'defaults'})")
            continue
        specs.append(spec)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BadInput(errors[0] + more)
    return specs


def check_definition(sweep_dir, unique, extend):
    """The runs already listed in this folder's manifest that this command does not
    list (kept listed). Resuming into a folder made by another sweep definition
    (another grid, or a change that alters runs: steps, data, ...) is refused, unless
    `extend=true`."""
    if not records.SweepManifest.exists(sweep_dir):
        return []
    try:
        old = records.SweepManifest.read(sweep_dir).runs
    except records.SweepError as e:
        raise BadInput(str(e)) from None
    old_ids = {r.run_id for r in old}
    new, gone = set(unique) - old_ids, old_ids - set(unique)
    if (new or gone) and not extend:
        example = next((unique[r].describe() for r in new), None)
        raise BadInput(
            f"{sweep_dir} holds another sweep definition: {len(new)} of this command's "
            f"{len(unique)} runs are not in it"
            + (f" (e.g. {example})" if example else "")
            + f", and {len(gone)} of its {len(old_ids)} are not in this command. Add "
            "extend=true to add the new runs to it, or drop resume=true for a new sweep"
        )
    return [r for r in old if r.run_id not in unique]


def dry_run(sweep_dir, unique, pending):
    todo = {s.run_id for s in pending}
    print(
        f"dry run: {len(unique)} runs for {sweep_dir} ({len(todo)} to train, "
        f"{len(unique) - len(todo)} already done); nothing is trained or written"
    )
    for rid, spec in unique.items():
        state = "train" if rid in todo else "done "
        print(f"  {state} {rid}  {spec.describe()}")
    remove_if_empty(sweep_dir)


def remove_if_empty(sweep_dir):
    """Hydra creates the sweep folder (with multirun.yaml) before our checks run: a
    refused command must not leave it behind looking like a sweep."""
    layout.remove_if_empty(sweep_dir, up_to=sweep_dir.parent.parent.parent, keep={"multirun.yaml"})


LOST_WAIT_S = 1.0  # how often the other jobs' claims are looked at


def recover_lost_job(config, batch, error: Exception) -> None:
    """A launcher raised for a batch. If it is submitit's UncompletedJobError (one of its
    jobs' processes died: killed, preempted, out of memory; its result file never came),
    say so in one line,
    wait for the batch's other jobs (each one's claim is held while it trains, and goes
    stale within claim_timeout once its process is gone, so the wait is bounded by the
    jobs themselves), and go on: the end of the sweep records the lost run as failed
    (its claim is left behind, its process gone), builds the report and exits 1."""
    import time

    if not any(c.__name__ == "UncompletedJobError" for c in type(error).__mro__):
        raise error  # not a lost job (a launcher's own error: said as it is)
    sweep_dir = Path(config.hydra.sweep.dir)
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    log.warning(
        f"a job of this batch of {len(batch)} was lost ({first}): its process died "
        "(killed, preempted or out of memory?); waiting for the others"
    )
    while records.live_claims(sweep_dir, float(config.get("claim_timeout", 60.0))):
        time.sleep(LOST_WAIT_S)
