"""Every fault class of the reliability issue, at random moments, several times each:

    kill -9 of the sweep      then resumed                 (a user's kill, a crash)
    kill -9 of one worker     the sweep goes on            (the OOM killer)
    SIGTERM of the sweep      then resumed                 (SLURM, systemd)
    two identical sweeps      into one folder, at once     (two terminals, array tasks)
    two single runs           in the same second           (a shell loop with &)
    a damaged record          bytes 200-1200 overwritten   (a bad disk), then resumed
    hostile names             sweep_name=../../x, /tmp/x   (typos, scripts)
    a stopped worker          SIGSTOP past claim_timeout, another sweep takes the run, SIGCONT
    a worker killed at start  SIGKILL before its first job (loky's start-up must not hang),
                              under our sweeper, Hydra's basic one and Optuna's
    a lone stopped worker     SIGSTOP, never continued, nobody else to take its run
    Dask workers killed       SIGKILL again and again (their nannies restart them), resumed
    a Dask cluster emptied    both workers SIGKILLed for good; resumed on a new cluster
    a tampered record         metrics.json edited by hand, then resumed
    a symlinked record        runs/<id> a link to another run's record, then resumed
    a tampered dataset cache  every label overwritten, then rerun

and counts what must stay 0: runs lost, runs trained twice, damaged records read as
results, files written outside the results root, sweeps hung (still running after
fault_work.HUNG_S). `landed` counts the repeats where the
fault hit while work was going on (a kill after the sweep ended tests nothing).
"""

import os
import random
import signal
import tempfile
import time
from pathlib import Path

from mlpsweep import records
from mlpsweep.bench.dask_cluster import local_cluster, worker_processes
from mlpsweep.bench.fault_work import (
    SWEEP,
    Work,
    loky_children,
    lost_and_damaged,
    resume_until_done,
    sweep_dir,
    wait_for_claim,
)


def interrupt(work, rng, jobs, sig):
    args = ["-m", f"seed=range({jobs})", *SWEEP]
    proc = work.start(*args)
    time.sleep(rng.uniform(1.5, 6.0))
    landed = proc.poll() is None
    if landed:
        proc.send_signal(sig)
    work.finish(proc)
    resume_until_done(work, args)
    return (*lost_and_damaged(sweep_dir(work), jobs), landed)


def kill_worker(work, rng, jobs):
    args = ["-m", f"seed=range({jobs})", *SWEEP]
    proc = work.start(*args)
    time.sleep(rng.uniform(1.5, 6.0))
    pid = wait_for_claim(lambda: sweep_dir(work), proc)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
    if work.finish(proc) != 0:  # a run that died twice fails; resume gives it another go
        resume_until_done(work, args)
    return (*lost_and_damaged(sweep_dir(work), jobs), pid is not None)


def collide(work, rng, jobs):
    args = ["-m", f"seed=range({jobs})", *SWEEP, "hydra.sweep.dir=results/shared/one"]
    procs = [work.start(*args) for _ in range(2)]
    for p in procs:
        work.finish(p)
    both = all("busy" in text for text in work.texts[-2:])  # each found the other at work
    return (*lost_and_damaged(work.cwd / "results/shared/one", jobs), both)


def single_runs(work, rng, jobs):
    procs = [work.start("steps=200", f"lr={lr}") for lr in (0.05, 0.2)]
    codes = [work.finish(p) for p in procs]
    found = [m for m in (work.cwd / "results/single").glob("*/metrics.json")]
    kept = {records.read_metrics(m.parent).overrides[-1] for m in found}
    same_second = len({p.parent.name[:19] for p in found}) == 1
    return 2 - len(kept & {"lr=0.05", "lr=0.2"}) + sum(c != 0 for c in codes), 0, same_second


def damage(work, rng, jobs):
    args = ["-m", f"seed=range({jobs})", *SWEEP]
    work.run(*args)
    folder = sweep_dir(work)
    victim = records.run_dir(folder, rng.choice(records.SweepManifest.read(folder).run_ids))
    hist = victim / "history.parquet"
    data = bytearray(hist.read_bytes())
    data[200:1200] = os.urandom(min(1000, max(0, len(data) - 200)))[: len(data[200:1200])]
    hist.write_bytes(bytes(data))
    taken = records.is_finished(victim)  # read as a result before the resume: a fault
    resume_until_done(work, args)
    lost, damaged = lost_and_damaged(folder, jobs)
    return lost, damaged + taken, True


def stopped_worker(work, rng, jobs):
    """A worker SIGSTOPped past the claim timeout while a second sweep into the same
    folder takes its run over; then SIGCONT: its result must not land twice."""
    longer = [a for a in SWEEP if not a.startswith("steps=")] + ["steps=8000"]
    args = ["-m", f"seed=range({jobs})", *longer, "claim_timeout=2"]
    args.append("hydra.sweep.dir=results/shared/one")
    first = work.start(*args)
    time.sleep(rng.uniform(0.5, 2.0))
    pid = wait_for_claim(lambda: work.cwd / "results/shared/one", first)
    if pid is None:
        work.finish(first)
        return (*lost_and_damaged(work.cwd / "results/shared/one", jobs), False)
    os.kill(pid, signal.SIGSTOP)
    second = work.start(*args)
    time.sleep(4.0)  # past the claim timeout: the second sweep takes the run over
    os.kill(pid, signal.SIGCONT)
    work.finish(second)
    work.finish(first)
    return (*lost_and_damaged(work.cwd / "results/shared/one", jobs), True)


def kill_starting_worker(work, rng, jobs, sweeper=()):
    """A worker SIGKILLed as it starts, before its first job (under `sweeper`'s
    arguments: ours by default, Hydra's basic, Optuna)."""
    args = ["-m", f"seed=range({jobs})", *SWEEP, *sweeper]
    if "hydra/sweeper=optuna" in sweeper:
        args = ["-m", *SWEEP, *sweeper, f"hydra.sweeper.n_trials={jobs}"]
    proc = work.start(*args)
    deadline, victim = time.monotonic() + 60, None
    while time.monotonic() < deadline and proc.poll() is None and victim is None:
        found = loky_children(proc.pid)
        if found:
            time.sleep(rng.uniform(0.0, 0.5))
            victim = found[0]
            os.kill(victim, signal.SIGKILL)
        time.sleep(0.01)
    if work.finish(proc) != 0:
        resume_until_done(work, args)
    folder = sweep_dir(work)
    if "hydra/sweeper=optuna" in sweeper:  # its trials may repeat a run: count what it made
        jobs = len(records.SweepManifest.read(folder).runs)
    return (*lost_and_damaged(folder, jobs), victim is not None)


def on_dask(address):
    return ["hydra.launcher.backend=dask", f"hydra.launcher.scheduler={address}"]


def dask_workers_killed(work, rng, jobs):
    """Dask's workers SIGKILLed again and again at random moments, their nannies
    restarting them: a job whose workers keep dying fails (KilledWorker) rather than
    the sweep waiting for ever (joblib's Dask backend did), and a resume finishes it."""
    args = ["-m", f"seed=range({jobs})", *SWEEP]
    with local_cluster(work.logs, nanny=True) as (address, nannies):
        proc = work.start(*args, *on_dask(address))
        time.sleep(rng.uniform(1.0, 4.0))
        landed = False
        for _ in range(rng.randint(4, 8)):
            if proc.poll() is not None:
                break
            for pid in [p for nanny in nannies for p in worker_processes(nanny)]:
                os.kill(pid, signal.SIGKILL)
                landed = True
            time.sleep(rng.uniform(0.3, 1.5))
        if work.finish(proc) != 0:
            resume_until_done(work, [*args, *on_dask(address)])
    return (*lost_and_damaged(sweep_dir(work), jobs), landed)


def dask_cluster_emptied(work, rng, jobs):
    """Both workers of a Dask cluster (no nannies) SIGKILLed for good at a random moment:
    the sweep ends after hydra.launcher.no_workers_s with one line, and a resume on a
    new cluster finishes it."""
    args = ["-m", f"seed=range({jobs})", *SWEEP, "hydra.launcher.no_workers_s=3"]
    with local_cluster(work.logs) as (address, workers):
        proc = work.start(*args, *on_dask(address))
        time.sleep(rng.uniform(1.0, 4.0))
        landed = proc.poll() is None
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        code = work.finish(proc)
    if code != 0:
        with local_cluster(work.logs) as (address, _):
            resume_until_done(work, [*args, *on_dask(address)])
    return (*lost_and_damaged(sweep_dir(work), jobs), landed)


OPTUNA = ("hydra/sweeper=optuna", "+sweep=lr_tune", "hydra.sweeper.n_jobs=2", "steps=1500")


def stopped_lone_worker(work, rng, jobs):
    """A worker SIGSTOPped at a random moment and never continued, with no other sweep
    to take its run over: the sweep must end (its watch kills the worker past the claim
    timeout, the job is lost and failed or run again), never wait for ever."""
    args = ["-m", f"seed=range({jobs})", *SWEEP, "claim_timeout=2"]
    proc = work.start(*args)
    time.sleep(rng.uniform(0.5, 3.0))
    pid = wait_for_claim(lambda: sweep_dir(work), proc)
    if pid is not None:
        os.kill(pid, signal.SIGSTOP)
    if work.finish(proc) != 0:
        resume_until_done(work, args)
    return (*lost_and_damaged(sweep_dir(work), jobs), pid is not None)


def tamper_record(work, rng, jobs):
    """A finished run's metrics.json edited by hand (final_train_loss=1e-9)."""
    import json

    args = ["-m", f"seed=range({jobs})", *SWEEP]
    work.run(*args)
    folder = sweep_dir(work)
    victim = records.run_dir(folder, rng.choice(records.SweepManifest.read(folder).run_ids))
    data = json.loads((victim / "metrics.json").read_text())
    data["final_train_loss"] = 1e-9
    (victim / "metrics.json").write_text(json.dumps(data))
    taken = records.is_finished(victim)  # a tampered record read as a result: the fault
    resume_until_done(work, args)
    lost, damaged = lost_and_damaged(folder, jobs)
    return lost, damaged + taken, True


def symlink_record(work, rng, jobs):
    """One run's folder replaced by a link to another run's record (counted twice?)."""
    args = ["-m", f"seed=range({jobs})", *SWEEP]
    work.run(*args)
    folder = sweep_dir(work)
    one, other = rng.sample(records.SweepManifest.read(folder).run_ids, 2)
    victim = records.run_dir(folder, one)
    target = records.run_dir(folder, other)
    for f in victim.iterdir():
        f.unlink()
    victim.rmdir()
    victim.symlink_to(target.resolve(), target_is_directory=True)
    taken = records.is_finished(victim)  # read through the link: seed counted twice
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    resume_until_done(work, args)
    lost, damaged = lost_and_damaged(folder, jobs)
    changed = {p.name: p.read_bytes() for p in target.iterdir()} != before
    return lost, damaged + taken + changed, True


def tamper_data(work, rng, jobs):
    """The dataset cache's labels overwritten (all 7): never trained on."""
    import numpy as np

    from mlpsweep.data import load_dataset
    from mlpsweep.data.sources import SOURCES

    if not any(Path(d).is_dir() for d in SOURCES["fashion_mnist"].system_dirs):
        return 0, 0, False  # needs Debian's dataset-fashion-mnist (CI installs it)
    data = work.root / "data"
    args = ["-m", "seed=0,1", "steps=50", "eval_every=0", "report=false", "dataset=fashion_mnist"]
    args.append(f"dataset.data_dir={data}")
    work.run(*args)
    labels = data / "fashion_mnist" / "npy" / "y_train.npy"
    true = np.load(labels)
    np.save(labels, np.full_like(true, 7), allow_pickle=False)
    work.run(*args, "resume=true")
    loaded = load_dataset("fashion_mnist", data_dir=data)  # a fresh process's view
    return 0, int(not np.array_equal(loaded.y_train, true)), True


def hostile_names(work, rng, jobs):
    for name in ("../../escape", "/tmp/mlpsweep-escape", "a/../..", "..", "x y"):
        work.run("-m", "steps=5", "seed=0", f"sweep_name={name}")
    return 0, 0, True


FAULTS = {
    "kill -9 of the sweep, resumed": lambda w, r, j: interrupt(w, r, j, signal.SIGKILL),
    "kill -9 of one worker": kill_worker,
    "SIGTERM of the sweep, resumed": lambda w, r, j: interrupt(w, r, j, signal.SIGTERM),
    "two identical sweeps into one folder": collide,
    "two single runs at once": single_runs,
    "a damaged record, resumed": damage,
    "hostile sweep names": hostile_names,
    "a stopped worker, taken over, resumed": stopped_worker,
    "a worker killed as it starts": kill_starting_worker,
    "... under Hydra's basic sweeper": lambda w, r, j: kill_starting_worker(
        w, r, j, ("hydra/sweeper=basic",)
    ),
    "... under the Optuna sweeper": lambda w, r, j: kill_starting_worker(w, r, j, OPTUNA),
    "a lone worker stopped (kill -STOP)": stopped_lone_worker,
    "Dask workers killed again and again": dask_workers_killed,
    "a Dask cluster left without workers": dask_cluster_emptied,
    "a tampered record, resumed": tamper_record,
    "a symlinked record, resumed": symlink_record,
    "a tampered dataset cache": tamper_data,
}


def run(repeats=3, jobs=12, seed=0, out=print, only=None):
    """Each fault class (or those named in `only`) `repeats` times; the totals."""
    rng = random.Random(seed)
    out(f"each fault {repeats} times at random moments, {jobs}-run sweeps (2 workers):")
    out(
        f"  {'fault':38} {'landed':>6} {'lost':>5} {'twice':>6} {'damaged read':>13} "
        f"{'outside':>8} {'hung':>5}"
    )
    totals = {"lost": 0, "twice": 0, "damaged": 0, "outside": 0, "hung": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, fault) in enumerate(FAULTS.items()):
            if only is not None and name not in only:
                continue
            row, landed = dict.fromkeys(totals, 0), 0
            for i in range(repeats):
                work = Work(tmp, f"{n}-{i}")
                lost, damaged, hit = fault(work, rng, jobs)
                landed += hit
                row["lost"] += lost
                row["twice"] += work.trained_twice()
                row["damaged"] += damaged
                row["outside"] += len(work.outside_results())
                row["hung"] += work.hung
            out(
                f"  {name:38} {f'{landed}/{repeats}':>6} {row['lost']:5d} {row['twice']:6d} "
                f"{row['damaged']:13d} {row['outside']:8d} {row['hung']:5d}"
            )
            for k in totals:
                totals[k] += row[k]
        escaped = list(Path(tmp).parent.glob("mlpsweep-escape*"))
    totals["outside"] += len(escaped)
    out(
        f"  {'total (target: all 0)':38} {'':6} {totals['lost']:5d} {totals['twice']:6d} "
        f"{totals['damaged']:13d} {totals['outside']:8d} {totals['hung']:5d}"
    )
    return totals
