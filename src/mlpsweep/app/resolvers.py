"""OmegaConf resolvers the configs use."""

import datetime
from pathlib import Path

from omegaconf import OmegaConf

from mlpsweep.records import SweepError, SweepManifest

STAMP_FORMAT = "%Y-%m-%d_%H-%M-%S"


def sweep_dir(parent, resume=False):
    """`parent`/<time>: a new sweep folder, or with resume=true the newest existing one
    with a readable manifest (so rerunning the command finishes that sweep).

    Registered with use_cache: Hydra resolves hydra.sweep.dir more than once, and the
    launcher copies the cache into every job's config, so all get the same answer."""
    parent = Path(str(parent))
    if resume:
        for candidate in sorted(parent.glob("*/"), reverse=True):
            try:
                SweepManifest.read(candidate)
            except SweepError:
                continue
            return str(candidate)
    return str(parent / datetime.datetime.now().strftime(STAMP_FORMAT))


def register_resolvers():
    if not OmegaConf.has_resolver("mlpsweep_sweep_dir"):
        OmegaConf.register_new_resolver("mlpsweep_sweep_dir", sweep_dir, use_cache=True)
