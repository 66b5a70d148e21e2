"""What a worker does with one job: train it and hand the result back.

Workers never write result files: they return the result to the launcher process, which
writes it (so no shared filesystem is needed, and there is one writer). A job that raises
is returned as "failed" with its one-line error and traceback: it never takes its
siblings down.
"""

import io
import logging
import os
import signal
import threading
import time
import traceback
import warnings

_datasets = {}
_blas_limit = None
_watching = False


def load_dataset_cached(name, data_dir):
    """One load per worker process (cheap: the full datasets are mmap'd .npy files)."""
    from mlpsweep.data import load_dataset

    key = (name, data_dir)
    if key not in _datasets:
        _datasets[key] = load_dataset(name, data_dir=data_dir)
    return _datasets[key]


def loky_worker_start():
    """Run by each loky worker as it starts (the executor's initializer; a Dask worker's
    parent may well be a shell that has gone away, so not there).

    - Exit when the sweep process that started it dies (kill -9), rather than finish a
      job nobody will collect and idle beside the rerun.
    - Ignore Ctrl-C: the terminal sends SIGINT to the whole process group, and a worker
      interrupted between two jobs would print loky's traceback. The sweep process
      handles it, and stops its workers.
    """
    exit_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def exit_with_parent():
    global _watching
    if _watching:
        return
    _watching = True
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(70)

    threading.Thread(target=watch, name="mlpsweep-parent-watch", daemon=True).start()


DEFAULT_BLAS_THREADS = 1


def limit_blas(threads):
    """Set this process's BLAS threads for a job (kept for the next job if it wants the
    same). A product's rounding depends on how many threads split it, so a run's numbers
    would change with n_jobs or the core count; one thread per job by default, since the
    jobs are the parallelism."""
    global _blas_limit
    threads = threads or DEFAULT_BLAS_THREADS
    if _blas_limit != threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")
        _blas_limit = threads


def train_job(spec):
    from mlpsweep.core import TrainConfig, train

    limit_blas(spec.get("blas_threads"))
    dataset = load_dataset_cached(spec["dataset"], spec.get("data_dir"))
    if spec.get("fingerprint") and dataset.fingerprint != spec["fingerprint"]:
        # A cluster worker has its own copy: it must be the launcher's data.
        raise RuntimeError(
            f"dataset {spec['dataset']} on this worker has fingerprint "
            f"{dataset.fingerprint[:12]}, the launcher's has {spec['fingerprint'][:12]}"
        )
    return train(TrainConfig(**spec["train"]), dataset)


def blas_record():
    """Which BLAS computed the run, on which CPU, with how many threads (the run's
    numbers are bitwise reproducible only where all three are the same)."""
    from mlpsweep.provenance import blas_library, blas_threads, cpu_model

    return {"blas": blas_library(), "blas_threads": blas_threads(), "cpu": cpu_model()}


def execute(spec):
    """Run the job described by `spec` (a plain dict; see sweep.job_spec). The result
    carries the bytes of the run's files, so the launcher only has to write them."""
    from mlpsweep.app.storage import encode_result

    start = time.perf_counter()
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    out = {"run_id": spec["run_id"], "pid": os.getpid()}
    attempts = 1 + int(spec.get("retries") or 0)
    for attempt in range(1, attempts + 1):
        out["attempts"] = attempt
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = train_job(spec)
            for w in caught:
                log.write(
                    f"warning: {w.category.__name__}: {w.message} ({w.filename}:{w.lineno})\n"
                )
            out.update(
                status=result.status,
                summary=result.summary(),
                train_loss=result.train_loss,
                eval_step=result.eval_step,
                test_loss=result.test_loss,
                test_accuracy=result.test_accuracy,
                batch_size=result.batch_size,
                error=None,
            )
            out["summary"].update(blas_record())
            break
        except Exception as e:  # noqa: BLE001 - a job's failure is data, not a crash
            first = str(e).splitlines()[0] if str(e) else ""
            out.update(status="failed", error=f"{type(e).__name__}: {first}".rstrip(": "))
            log.write(f"attempt {attempt} of {attempts} failed:\n{traceback.format_exc()}")
    root.removeHandler(handler)
    out["log"] = log.getvalue()
    encode_result(out, spec["config"])
    out["seconds"] = time.perf_counter() - start
    return out
