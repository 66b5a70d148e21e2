"""The folder of a single run (`python run.py` without -m): marked while the run trains
in it, and removed while empty (a refused, interrupted or failed run leaves none)."""

from pathlib import Path

from mlpsweep.records.layout import remove_if_empty

MARK = ".mlpsweep-run"  # made exclusively in a single run's folder while it trains


def drop_if_empty(output_dir) -> Path:
    """Remove a single run's folder (and results/single, results) while it is empty."""
    out = Path(output_dir)
    remove_if_empty(out, up_to=out.parent.parent.parent, keep=(MARK,))
    return out
