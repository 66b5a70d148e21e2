"""A real Dask cluster on 127.0.0.1 for the fault bench and the tests: `dask scheduler`
and two `dask worker` processes, started and waited for with bounds, torn down after."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys

DASK = shutil.which("dask") or os.path.join(os.path.dirname(sys.executable), "dask")
START_S = 60  # the workers must have joined the scheduler by then


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_cluster(folder, nanny=False, scheduler_env=None, workers=2, threads=1):
    """(address, worker pids). With `nanny`, the pids are the nannies: each restarts its
    worker (a child process, `worker_processes`) when it dies. Logs go to
    `folder`/dask.log."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = open(os.path.join(folder, "dask.log"), "w")
    common = {"stdout": logs, "stderr": subprocess.STDOUT, "cwd": folder}
    procs = [
        subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env={**os.environ, **(scheduler_env or {})},
            **common,
        )
    ]
    args = ["--nthreads", str(threads), "--nworkers", "1", "--no-dashboard", "--memory-limit", "0"]
    args += [] if nanny else ["--no-nanny"]
    for _ in range(workers):
        procs.append(subprocess.Popen([DASK, "worker", address, *args], **common))
    try:
        with Client(address, timeout=START_S) as client:
            client.wait_for_workers(workers, timeout=START_S)
        yield address, [p.pid for p in procs[1:]]
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)  # bounded: a worker still closing is killed
            except subprocess.TimeoutExpired:
                p.kill()
        logs.close()


def worker_processes(nanny_pid):
    """The worker process a nanny runs (not multiprocessing's resource tracker)."""
    import psutil

    with contextlib.suppress(psutil.Error):
        return [
            c.pid
            for c in psutil.Process(nanny_pid).children()
            if "spawn_main" in " ".join(c.cmdline())
        ]
    return []
