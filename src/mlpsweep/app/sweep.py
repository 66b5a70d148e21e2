"""Run a sweep's jobs: compose and validate all of them first, skip the finished ones,
run the rest in parallel through joblib, and write each result as it arrives."""

import functools
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus

from mlpsweep.app import storage
from mlpsweep.app.compose import JobComposer, task_container, train_config
from mlpsweep.core.config import ConfigError
from mlpsweep.data.idx import DatasetError

log = logging.getLogger("mlpsweep")
SWEEP_FILE = "sweep.json"


def fail(message, code=2):
    """One line on stderr and a non-zero exit: for bad input, before any job starts."""
    print(f"mlpsweep: {message}", file=sys.stderr)
    raise SystemExit(code)


def job_spec(container, dataset_fingerprints, blas_threads):
    """Validate one job's config and turn it into the plain dict a worker runs."""
    from mlpsweep.app.jobs import load_dataset_cached

    tc = train_config(container)
    ds = container["dataset"]
    key = (ds["name"], ds.get("data_dir"))
    if key not in dataset_fingerprints:
        dataset = load_dataset_cached(*key)
        dataset_fingerprints[key] = (dataset.fingerprint, dataset.train_size)
    fingerprint, train_size = dataset_fingerprints[key]
    tc.validate(train_size=train_size)
    return {
        "run_id": storage.run_id(tc, ds["name"], fingerprint),
        "train": asdict(tc),
        "dataset": ds["name"],
        "data_dir": ds.get("data_dir"),
        "fingerprint": fingerprint,
        "blas_threads": blas_threads,
        "config": container,
    }


def prepare(composer, job_overrides, blas_threads):
    """(jobs, errors): every job composed and checked before anything runs."""
    jobs, errors, fingerprints = [], [], {}
    for overrides in job_overrides:
        try:
            container = task_container(composer.compose(overrides))
            spec = job_spec(container, fingerprints, blas_threads)
        except (ConfigError, DatasetError) as e:
            errors.append(f"{e} (job: {' '.join(overrides) or 'defaults'})")
            continue
        spec["overrides"] = list(overrides)
        jobs.append(spec)
    return jobs, errors


def expected_cost(spec):
    """A rough relative cost of a job: steps x (batch + a fixed part) x weights x dtype."""
    t = spec["train"]
    hidden = t["hidden_sizes"] or [t["width"]] * t["depth"]
    sizes = [784, *hidden, 10]
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return t["steps"] * (t["batch_size"] + 20) * weights * (2 if t["dtype"] == "float64" else 1)


def metrics_record(spec, result):
    m = dict(result.get("summary") or {})
    m.update(
        run_id=spec["run_id"],
        status=result["status"],
        error=result.get("error"),
        attempts=result.get("attempts"),
        overrides=spec["overrides"],
        dataset=spec["dataset"],
        data_fingerprint=spec["fingerprint"],
        job_seconds=result.get("seconds"),
        worker_pid=result.get("pid"),
        code=spec.get("code"),  # a resumed sweep may mix commits: each run says its own
    )
    return m


def describe(spec, result):
    what = " ".join(spec["overrides"]) or "defaults"
    m = result.get("summary") or {}
    if result["status"] == "failed":
        return f"{what}: FAILED {result.get('error')} ({result.get('seconds', 0):.1f}s)"
    loss = m.get("final_train_loss")
    loss_txt = f"loss {loss:.4f}" if loss is not None else "no loss"
    return f"{what}: {result['status']} {loss_txt} ({result.get('seconds', 0):.1f}s)"


def run_sweep(launcher, job_overrides):
    from mlpsweep.app.engines import engine

    cfg = launcher.config
    sweep_dir = Path(cfg.hydra.sweep.dir)
    composer = JobComposer(launcher.hydra_context.config_loader, cfg)
    jobs, errors = prepare(composer, job_overrides, launcher.blas_threads)
    if errors:
        remove_if_empty(sweep_dir)
        extra = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        fail(errors[0] + extra)
    code = code_version()
    for spec in jobs:
        spec["retries"] = int(cfg.get("retries", 0))
        spec["code"] = code
    unique = {spec["run_id"]: spec for spec in jobs}
    listed = check_definition(sweep_dir, unique, cfg.get("extend", False))

    runs_dir = sweep_dir / "runs"
    pending = [s for s in unique.values() if not storage.is_finished(runs_dir / s["run_id"])]
    # Longest first: the short jobs then fill the gaps at the end instead of one long job
    # running alone on one core. The order cannot change any run's numbers.
    pending.sort(key=expected_cost, reverse=True)
    if cfg.get("dry_run", False):
        dry_run(sweep_dir, unique, pending)
        return []
    for run_dir in runs_dir.glob("*/"):
        storage.remove_partial(run_dir)  # temporary files a kill left behind
    runs_dir.mkdir(parents=True, exist_ok=True)
    record_sweep(sweep_dir, cfg, listed + [s for s in unique.values() if s not in listed])
    skipped = len(unique) - len(pending)
    log.info(f"{len(unique)} runs in {sweep_dir}: {len(pending)} to train, {skipped} already done")

    results = {}
    if pending:
        with engine(launcher, len(pending)) as (backend, n_jobs):
            run_pending(launcher, backend, n_jobs, pending, runs_dir, results)
    return [job_return(s, results.get(s["run_id"]), runs_dir) for s in jobs]


def remove_if_empty(sweep_dir):
    """Hydra creates the sweep folder (with multirun.yaml) before our checks run: a
    refused command must not leave it behind looking like a sweep."""
    if sweep_dir.is_dir() and {p.name for p in sweep_dir.iterdir()} <= {"multirun.yaml"}:
        (sweep_dir / "multirun.yaml").unlink(missing_ok=True)
        sweep_dir.rmdir()
        for parent in (sweep_dir.parent, sweep_dir.parent.parent):  # results/<name>, results
            if parent.name and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()


def check_definition(sweep_dir, unique, extend):
    """The runs already listed in this folder's sweep.json (as specs to keep listing).
    Resuming into a folder made by another sweep definition (another grid, or a change
    that alters runs: steps, data, ...) is refused, unless `extend=true`."""
    path = sweep_dir / SWEEP_FILE
    if not path.exists():
        return []
    old = json.loads(path.read_text())["runs"]
    old_ids = {r["run_id"] for r in old}
    new, gone = set(unique) - old_ids, old_ids - set(unique)
    if (new or gone) and not extend:
        example = next((" ".join(unique[r]["overrides"]) for r in new), None)
        fail(
            f"{sweep_dir} holds another sweep definition: {len(new)} of this command's "
            f"{len(unique)} runs are not in it"
            + (f" (e.g. {example})" if example else "")
            + f", and {len(gone)} of its {len(old_ids)} are not in this command. Add "
            "extend=true to add the new runs to it, or drop resume=true for a new sweep"
        )
    return [
        {"run_id": r["run_id"], "overrides": r["overrides"]}
        for r in old
        if r["run_id"] not in unique
    ]


def dry_run(sweep_dir, unique, pending):
    todo = {s["run_id"] for s in pending}
    print(
        f"dry run: {len(unique)} runs for {sweep_dir} ({len(todo)} to train, "
        f"{len(unique) - len(todo)} already done); nothing is trained or written"
    )
    for rid, spec in unique.items():
        state = "train" if rid in todo else "done "
        print(f"  {state} {rid}  {' '.join(spec['overrides']) or 'defaults'}")
    remove_if_empty(sweep_dir)


def run_pending(launcher, backend, n_jobs, pending, runs_dir, results):
    """Run the jobs, writing each result as it arrives (into `results` too)."""
    from joblib import Parallel, delayed
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from mlpsweep.app.jobs import execute

    fail_fast = bool(launcher.config.get("fail_fast", False))
    parallel = Parallel(
        n_jobs=n_jobs,
        backend=backend,  # None: the one engine() set with parallel_config
        return_as="generator_unordered",
        **launcher.joblib_kwargs,
    )
    by_id = {s["run_id"]: s for s in pending}
    show = launcher.progress and sys.stderr.isatty()
    started = time.perf_counter()
    with tqdm(total=len(pending), unit="run", disable=not show, dynamic_ncols=True) as bar:
        try:
            with logging_redirect_tqdm(), warnings.catch_warnings():
                # joblib warns when fail_fast abandons the queue: that is what was asked.
                warnings.filterwarnings("ignore", message=".*tasks which were still being")
                for result in parallel(delayed(execute)(s) for s in pending):
                    spec = by_id[result["run_id"]]
                    write_result(runs_dir, spec, result, len(results))
                    results[spec["run_id"]] = result
                    bar.update()
                    log.info(describe(spec, result))
                    if fail_fast and result["status"] == "failed":
                        log.error(
                            f"fail_fast: stopping after the first failed job; "
                            f"{len(pending) - len(results)} jobs not run"
                        )
                        break
        except KeyboardInterrupt:
            bar.close()
            fail(
                f"interrupted: {len(results)} finished runs kept in {runs_dir}; rerun the "
                "same command with resume=true to finish the sweep",
                code=130,
            )
    log.info(f"trained {len(results)} runs in {time.perf_counter() - started:.1f} s")


def write_result(runs_dir, spec, result, n_written):
    """Write a run's files; a write error (a full disk, say) stops the sweep with one
    line. Nothing half-written remains: each file is complete or absent, and a run
    without its metrics.json counts as not finished."""
    try:
        storage.write_run(runs_dir / spec["run_id"], result, metrics_record(spec, result))
    except OSError as e:
        fail(
            f"cannot write results to {runs_dir}: {e.strerror or e}; the {n_written} runs "
            "written before are kept: free space, then rerun with resume=true",
            code=1,
        )


def record_sweep(sweep_dir, cfg, specs):
    """sweep.json: the command and the run ids of this sweep (read by the report)."""
    data = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "cwd": os.getcwd(),
        "sweep_name": cfg.get("sweep_name", "adhoc"),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "code": code_version(),
        "runs": [{"run_id": s["run_id"], "overrides": s["overrides"]} for s in specs],
    }
    storage.atomic_write(
        sweep_dir / SWEEP_FILE, lambda f: f.write(json.dumps(data, indent=1).encode())
    )


@functools.cache
def code_version():
    """The git commit of the code that ran (the checkout holding this package)."""
    from mlpsweep.provenance import git_commit

    return git_commit(Path(__file__).resolve().parent)


def job_return(spec, result, runs_dir):
    ret = JobReturn(
        overrides=spec["overrides"],
        working_dir=str(runs_dir / spec["run_id"]),
        task_name="mlpsweep",
    )
    # Failed jobs are reported as data (status in metrics.json), not raised here: Hydra's
    # sweeper would re-raise the first one and skip the end-of-sweep report. SweepEnd
    # sets the exit status from the recorded statuses instead.
    ret.status = JobStatus.COMPLETED
    ret.return_value = (
        storage.read_metrics(runs_dir / spec["run_id"])
        if result is None
        else {"status": result["status"], "error": result.get("error")}
    )
    return ret
