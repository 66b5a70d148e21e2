"""The Dask engine's parts that need no cluster: its log filter and the stop of a job's
thread (the tests on a real cluster are in test_dask.py)."""

import logging
import threading

import pytest

pytest.importorskip("distributed")
from mlpsweep.launcher.dask_client import QuietTracebacks  # noqa: E402
from mlpsweep.launcher.dask_stop import JobAbandoned, raise_in_thread  # noqa: E402


def log_error(logger, message):
    try:
        raise ConnectionRefusedError("[Errno 111] Connection refused")
    except ConnectionRefusedError:
        logger.exception(message)


def test_distributed_s_tracebacks_become_one_line_while_a_launch_runs(caplog):
    logger = logging.getLogger("distributed.utils")
    with caplog.at_level(logging.WARNING), QuietTracebacks():
        log_error(logger, "")  # distributed's log_errors: no message, a traceback
        log_error(logger, "reconnect to %s failed")
        logging.getLogger("distributed").info("Starting established connection")
    assert [(r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("reconnect to %s failed (ConnectionRefusedError)", None)
    ]
    caplog.clear()
    log_error(logger, "after the launch")  # the filter is gone with the launch
    assert caplog.records[0].exc_info is not None


def test_a_job_s_thread_is_stopped_where_it_is():
    started, outcome = threading.Event(), []

    def job():
        started.set()
        try:
            while True:  # a training loop: Python instructions, no end of its own
                sum(range(100))
        except JobAbandoned:
            outcome.append("abandoned")

    thread = threading.Thread(target=job)
    thread.start()
    assert started.wait(30)
    raise_in_thread(thread.ident, JobAbandoned)
    thread.join(30)
    assert not thread.is_alive() and outcome == ["abandoned"]
    assert not issubclass(JobAbandoned, Exception)  # no `except Exception` records it
