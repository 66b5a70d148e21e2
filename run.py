"""mlpsweep's entry point: `python run.py [-m] [key=value ...]` (see `python run.py --help`)."""

import hydra

from mlpsweep.app.errors import run_main
from mlpsweep.app.schema import register
from mlpsweep.app.task import main_task

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    return main_task(cfg)


if __name__ == "__main__":
    run_main(main)
