"""OmegaConf resolvers the configs use."""

import datetime
from pathlib import Path

from omegaconf import OmegaConf

STAMP_FORMAT = "%Y-%m-%d_%H-%M-%S"
_stamps = {}


def sweep_stamp(sweep_name, resume=False):
    """The timestamp folder of this sweep: a new one, or with resume=true the newest
    existing results/<sweep_name>/<stamp> (so rerunning the command finishes that sweep).
    Memoised: Hydra resolves hydra.sweep.dir more than once and must get one answer."""
    key = (str(sweep_name), bool(resume))
    if key not in _stamps:
        stamp = None
        if resume:
            parent = Path("results") / str(sweep_name)
            existing = sorted(p.name for p in parent.glob("*") if (p / "runs").is_dir())
            stamp = existing[-1] if existing else None
        _stamps[key] = stamp or datetime.datetime.now().strftime(STAMP_FORMAT)
    return _stamps[key]


def register_resolvers():
    if not OmegaConf.has_resolver("mlpsweep_sweep_stamp"):
        OmegaConf.register_new_resolver("mlpsweep_sweep_stamp", sweep_stamp)
