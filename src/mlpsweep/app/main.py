"""run.py's main: Hydra's main run so that every error is one line and an exit status.

run_main runs Hydra with HYDRA_FULL_ERROR=1, so that its exceptions reach it, then says
one line naming what is wrong and how to fix it (errors.one_line) and exits 2 (1 for a
JobError); Ctrl-C, SIGTERM and SIGHUP stop a sweep or a run the same way. A user who sets
HYDRA_FULL_ERROR=1 gets the full traceback (errors.user_wants_tracebacks: the variable
run_main sets itself does not count). For run.py only: the process exits after it.
"""

import contextlib
import gc
import io
import logging
import os
import signal
import sys
import traceback

from mlpsweep.app.errors import (
    SET_BY_RUN_MAIN,
    TRACEBACK_HINT,
    BadInput,
    JobError,
    Terminated,
    one_line,
    user_wants_tracebacks,
)


def _terminate(signum, frame):
    raise Terminated(signum)


def quiet_stdout():
    """Point stdout at /dev/null, so the interpreter's last flush to a closed pipe is
    not one more error."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


class _WithoutHydrasJobLine:
    """sys.stderr without the line Hydra writes before re-raising a single run's error
    ("Error executing job with overrides: [...]", hydra.core.utils.JobReturn): run_main
    says what failed in its own one line, and the reader should get that line alone."""

    PREFIX = "Error executing job with overrides:"

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        return len(text) if text.startswith(self.PREFIX) else self.stream.write(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def reopen_closed_streams():
    """A standard stream the caller closed (`>&-`): Python leaves sys.stdout None, which
    libraries call (loky flushes it before it starts a worker), and the next file opened
    would take its descriptor (a record written where stdout was). /dev/null takes it."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if getattr(sys, name) is None:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)  # inheritable
                os.close(null)
            else:  # os.open's descriptors are closed at exec: a worker would lose it
                os.set_inheritable(fd, True)
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 - for the process


@contextlib.contextmanager
def hydra_errors_reach_us(full):
    """HYDRA_FULL_ERROR=1 while Hydra runs, so that its exceptions reach run_main rather
    than Hydra's own report; marked as run_main's (errors.SET_BY_RUN_MAIN), unless the
    user set it (`full`). The environment is put back after."""
    keys = ("HYDRA_FULL_ERROR", SET_BY_RUN_MAIN)
    saved = {key: os.environ.get(key) for key in keys}
    if not full:
        os.environ.update(dict.fromkeys(keys, "1"))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_main(main):
    """Call Hydra's main; turn any error it raises into one line and exit status 2 (bad
    input), or 1 for a JobError. Ctrl-C and SIGTERM stop the sweep the same way: no job
    is started, finished runs are kept, workers are shut down; exit 130 / 143. For
    run.py only: the process is expected to exit after it."""
    reopen_closed_streams()
    full = user_wants_tracebacks()  # the user's own HYDRA_FULL_ERROR, read before ours
    # Hydra prints (--info in any spelling, a sweep's job lines) through logging, whose
    # handler reports a reader gone away (`| head -1`) as one traceback per record; the
    # pipe's end is not an error, and a failed log line never changes what a run does
    logging.raiseExceptions = False
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)  # a closed terminal: as SIGTERM, not silence
    if not full and sys.stderr is not None:
        sys.stderr = _WithoutHydrasJobLine(sys.stderr)
    try:
        with hydra_errors_reach_us(full):
            main()
    except BadInput as e:
        if full:  # the user's HYDRA_FULL_ERROR=1: the traceback, as for any error
            traceback.print_exception(e)
        print(e.code, file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt as e:
        what = "interrupted"
        if isinstance(e, Terminated):
            what = "hung up" if e.signum == signal.SIGHUP else "terminated"
        multirun = {"-m", "--multirun", "hydra.mode=MULTIRUN"} & set(sys.argv[1:])
        if not multirun:  # a single run: task.run_task removed its folder
            print(f"mlpsweep: {what}: the run did not finish; nothing was kept", file=sys.stderr)
        elif getattr(e, "nothing_kept", False):  # the sweeper removed the new sweep's folder
            print(
                f"mlpsweep: {what} before any run finished: nothing was kept; rerun the "
                "same command (without resume=true, which would look for an earlier sweep)",
                file=sys.stderr,
            )
        else:
            print(
                f"mlpsweep: {what}: finished runs kept; rerun the same command with "
                "resume=true to finish the sweep",
                file=sys.stderr,
            )
        raise SystemExit(128 + e.signum if isinstance(e, Terminated) else 130) from None
    except BrokenPipeError:  # `python run.py --help | head`: the reader has what it wanted
        quiet_stdout()
        raise SystemExit(0) from None
    except Exception as exc:  # noqa: BLE001 - reported, not hidden: see HYDRA_FULL_ERROR
        if isinstance(exc.__context__, BrokenPipeError):
            quiet_stdout()
            raise SystemExit(0) from None
        if full:
            raise
        if isinstance(exc, JobError):
            print(f"mlpsweep: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        print(f"mlpsweep: {one_line(exc)} {TRACEBACK_HINT}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        # run.py exits next: the collector's passes at exit would walk the millions of
        # objects of pandas, matplotlib and the report's data for nothing.
        gc.freeze()
