"""A run's log holds what its own job logged, not what another job of the same process
logged meanwhile (a Dask worker runs one job per thread)."""

import logging
import threading

from helpers import REPO, VERSION_BASE, own_hydra_state
from hydra import compose, initialize_config_dir

from mlpsweep.app.execute import execute
from mlpsweep.app.schema import register
from mlpsweep.app.spec import run_spec
from mlpsweep.core.observe import TrainObserver
from mlpsweep.launcher.compose import task_container


class Chatty(TrainObserver):
    """Logs a line at step 1, and has another thread log one while this job trains."""

    def on_step(self, step, train_loss):
        if step == 1:
            logging.getLogger("mlpsweep").warning("this job's own line")
            other = threading.Thread(
                target=lambda: logging.getLogger("mlpsweep").warning("another job's line")
            )
            other.start()
            other.join()


def test_a_run_s_log_holds_its_own_thread_s_lines_only():
    with own_hydra_state():
        register()  # the config groups held in Hydra's config store
        with initialize_config_dir(str(REPO / "conf"), **VERSION_BASE):
            cfg = compose("config", overrides=["steps=3", "eval_every=0"])
    spec = run_spec(task_container(cfg))
    record = execute(spec, observer=Chatty())
    assert record.metrics.status.value == "ok", record.metrics.error
    assert "this job's own line" in record.log
    assert "another job's line" not in record.log
