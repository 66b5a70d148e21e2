"""Helpers the tests share: running the app in-process through Hydra's own API (for
logic) and as a subprocess (for the CLI surface, exit codes and signals), and waiting
on files instead of sleeping."""

import contextlib
import copy
import gc
import html
import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.plugins import Plugins
from hydra.core.singleton import Singleton

from mlpsweep.launcher.hydra_compat import VERSION_BASE, trusting_mlpsweep

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def own_hydra_state():
    """Hydra keeps process-wide singletons (the config store, the version base, ...):
    put them back as they were, so that no test leaks its Hydra setup into another."""
    # Hydra 1.4 imports plugin modules once (1.3 ran them again at each scan): have them
    # imported before the snapshot, or the config store loses the entries they made.
    Plugins.instance()
    state = copy.deepcopy(Singleton.get_state())
    try:
        yield
    finally:
        Singleton.set_state(state)
        GlobalHydra.instance().clear()


@contextlib.contextmanager
def said_as_run_main():
    """Bad input as run.py's run_main reports it: its one line on stderr, exit status 2."""
    from mlpsweep.app.errors import BadInput

    try:
        yield
    except BadInput as e:
        print(e.code, file=sys.stderr)
        raise SystemExit(2) from None


def multirun(sweep_dir, *overrides, task_function=None):
    """`python run.py -m OVERRIDES` in this process, into `sweep_dir`: Hydra's sweeper,
    launcher and callbacks, as the CLI runs them; returns the JobReturns of the batches.
    SystemExit propagates (the end-of-sweep callback exits 1 when a run failed)."""
    from mlpsweep.app.schema import register
    from mlpsweep.app.task import main_task

    if not any(o.startswith(("hydra.launcher", "hydra/launcher")) for o in overrides):
        # One worker: joblib runs the jobs in this process, with no worker processes to
        # start (a second each); tests of parallelism say how many workers they want.
        overrides = ("hydra.launcher.n_jobs=1", *overrides)
    with own_hydra_state(), said_as_run_main():
        register()
        GlobalHydra.instance().clear()
        with (
            initialize_config_dir(str(REPO / "conf"), **VERSION_BASE, job_name="run"),
            trusting_mlpsweep(),
        ):
            hydra = GlobalHydra.instance().hydra
            return hydra.multirun(
                config_name="config",
                task_function=task_function or main_task,
                overrides=["hydra.mode=MULTIRUN", f"hydra.sweep.dir={sweep_dir}", *overrides],
                with_log_configuration=False,
            )


def run_once(run_dir, *overrides):
    """`python run.py OVERRIDES` (one run, no -m) in this process, into `run_dir`."""
    from mlpsweep.app.schema import register
    from mlpsweep.app.task import main_task

    with own_hydra_state(), said_as_run_main():
        register()
        GlobalHydra.instance().clear()
        with (
            initialize_config_dir(str(REPO / "conf"), **VERSION_BASE, job_name="run"),
            trusting_mlpsweep(),
        ):
            return GlobalHydra.instance().hydra.run(
                config_name="config",
                task_function=main_task,
                overrides=[f"hydra.run.dir={run_dir}", *overrides],
                with_log_configuration=False,
            )


def run_app(cwd, *args, timeout=600, env=None):
    """`python run.py ARGS` in `cwd`, as a user would run it; returns the CompletedProcess."""
    environ = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    environ.update(env or {})
    Path(cwd).mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ,
    )


def run_cli(cwd, *args, env=None):
    """`python run.py ARGS` in `cwd`, in this process: run.py's own main under run_main
    (its one-line errors and exit codes), output captured; a CompletedProcess as
    run_app returns, without a second of interpreter start-up and imports."""
    import importlib.util
    import io
    import logging
    import signal

    # As __main__: its `if __name__ == "__main__"` block runs, and Hydra finds conf/
    # beside the file, as for `python run.py`.
    spec = importlib.util.spec_from_file_location("__main__", REPO / "run.py")
    module = importlib.util.module_from_spec(spec)
    out, err = io.StringIO(), io.StringIO()
    saved = (dict(os.environ), list(sys.argv), os.getcwd(), signal.getsignal(signal.SIGTERM))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    os.environ.pop("HYDRA_FULL_ERROR", None)
    os.environ.update(env or {})
    Path(cwd).mkdir(parents=True, exist_ok=True)
    os.chdir(cwd)
    if "-m" in args and not any(a.startswith(("hydra.launcher", "hydra/launcher")) for a in args):
        args = (*args, "hydra.launcher.n_jobs=1")  # as multirun(): no worker processes
    sys.argv = [str(REPO / "run.py"), *args]
    code = 0
    try:
        with own_hydra_state(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                spec.loader.exec_module(module)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else int(e.code is not None)
            except Exception:  # what Python does with an uncaught exception
                traceback.print_exc()
                code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved[0])
        sys.argv = saved[1]
        os.chdir(saved[2])
        signal.signal(signal.SIGTERM, saved[3])
        root.handlers[:] = handlers
        root.setLevel(level)
        gc.unfreeze()  # run_main freezes it for the process's exit
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def start_app(cwd, *args, **popen):
    """`python run.py ARGS` started in `cwd` (output discarded unless `popen` says
    otherwise); returns the Popen, for tests that signal a running sweep."""
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen([sys.executable, str(REPO / "run.py"), *args], cwd=cwd, **popen)


def sweep_dirs(cwd, name="adhoc"):
    return sorted((Path(cwd) / "results" / name).glob("*/"))


def wait_for(predicate, timeout=120, what="a condition"):
    """Poll `predicate` (a cheap file check) until it is true; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def finished_runs(root):
    return list(Path(root).glob("**/runs/*/metrics.json"))


def wait_for_runs(cwd, n=1, timeout=120):
    """Wait until at least n runs under cwd have finished; return how many did."""
    wait_for(lambda: len(finished_runs(cwd)) >= n, timeout, f"{n} finished runs")
    return len(finished_runs(cwd))


def page_text(fragment: str) -> str:
    """A page's words as a reader sees them: tags (the glossary's links) removed,
    entities decoded, runs of white space made one."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", fragment)))
