"""mlpsweep's entry point: `python run.py [-m] [key=value ...]` (see `python run.py --help`)."""

import hydra

from mlpsweep.app.main import run_main
from mlpsweep.app.schema import register
from mlpsweep.app.task import main_task
from mlpsweep.launcher.hydra_compat import MAIN_KWARGS

register()


@hydra.main(config_path="conf", config_name="config", **MAIN_KWARGS)
def main(cfg):
    return main_task(cfg)


if __name__ == "__main__":
    run_main(main)
