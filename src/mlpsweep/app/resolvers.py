"""OmegaConf resolvers the configs use."""

import datetime
import re
from pathlib import Path

from omegaconf import OmegaConf

from mlpsweep.records import SweepError, SweepManifest

STAMP_FORMAT = "%Y-%m-%d_%H-%M-%S"


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def sweep_dir(root, name, resume=False):
    """`root`/`name`/<time>: a new sweep folder, or with resume=true the newest existing
    one with a readable manifest (so rerunning the command finishes that sweep). `name`
    must be a plain folder name: a sweep never writes outside `root`.

    Registered with use_cache: Hydra resolves hydra.sweep.dir more than once, and the
    launcher copies the cache into every job's config, so all get the same answer."""
    if not SAFE_NAME.fullmatch(str(name)) or str(name) in (".", ".."):
        raise ValueError(
            f"sweep_name={name!r}: must be a plain folder name (letters, digits, . _ -), "
            f"as it names {root}/<sweep_name>/"
        )
    parent = Path(str(root)) / str(name)
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
