"""The folder of a single run (`python run.py` without -m): noted while it trains, so
that an interrupted command can remove it (run_main), and removed while empty."""

from pathlib import Path

from mlpsweep.records.layout import remove_if_empty

_training: Path | None = None  # Hydra forgets its config once the job is over
MARK = ".mlpsweep-run"  # made exclusively in a single run's folder while it trains


def training(folder: Path | None) -> None:
    """Note the single run this process trains now (None: it finished)."""
    global _training
    _training = folder


def folder_in_training() -> Path | None:
    return _training


def drop_if_empty(output_dir) -> Path:
    """Remove a single run's folder (and results/single, results) while it is empty."""
    out = Path(output_dir)
    remove_if_empty(out, up_to=out.parent.parent.parent, keep=(MARK,))
    return out
