"""OmegaConf resolvers the configs use: the folders results go to.

Both create their folder exclusively (records.layout.fresh_dir), so two commands
started in the same second never share one. They are registered with use_cache: Hydra
resolves hydra.run.dir / hydra.sweep.dir more than once, and copies the cache into every
job's config, so all get the one answer.
"""

from pathlib import Path

from omegaconf import OmegaConf

from mlpsweep.launcher.hydra_compat import register_resolver
from mlpsweep.records import SweepError, SweepManifest
from mlpsweep.records.layout import STAMP_FORMAT, check_name, fresh_dir

# Commands that only show the config (--cfg, --info, --help, ...) resolve the folders
# to print them: then a folder is named, not made (run_main sets this).
inspecting = False


def folder(parent):
    """A fresh folder under `parent`, or (inspecting) the name it would get."""
    if inspecting:
        import datetime

        return Path(parent) / datetime.datetime.now().strftime(STAMP_FORMAT)
    return fresh_dir(parent)


def sweep_dir(root, name, resume=False):
    """`root`/`name`/<time>: a new sweep folder, or with resume=true the newest existing
    one with a readable manifest (so rerunning the command finishes that sweep). `name`
    must be a plain folder name: a sweep never writes outside `root`."""
    parent = Path(str(root)) / check_name(name, "sweep_name", root)
    if resume:
        for candidate in sorted(parent.glob("*/"), key=made_order, reverse=True):
            try:
                SweepManifest.read(candidate)
            except SweepError:
                continue
            return str(candidate)
    if not inspecting:
        remove_abandoned(parent)
    return str(folder(parent))


ABANDONED_S = 600.0  # a sweep folder still empty after this was left by a killed command


def remove_abandoned(parent):
    """Remove the sweep folders under `parent` that a command killed while planning left
    behind: holding nothing, or only multirun.yaml, for over ABANDONED_S (a sweep being
    planned right now is younger; a planned one has its sweep.json)."""
    import time

    for old in parent.glob("*/"):
        try:
            names = {p.name for p in old.iterdir()}
            young = time.time() - old.stat().st_mtime < ABANDONED_S
        except OSError:
            continue
        if names <= {"multirun.yaml"} and not young and not old.is_symlink():
            for name in names:
                (old / name).unlink(missing_ok=True)
            old.rmdir()


def made_order(folder):
    """(time stamp, clash number): `<t>_10` was made after `<t>_9` (fresh_dir names a
    folder made in the same second as another `<t>_2`, `<t>_3`, ...)."""
    stamp, _, n = folder.name.rpartition("_")
    if stamp and n.isdigit() and not stamp.endswith("-"):
        return (stamp, int(n))
    return (folder.name, 1)


def run_dir(root):
    """`root`/<time>: a new folder for a single run."""
    return str(folder(Path(str(root))))


def register_resolvers():
    for name, resolver in (("mlpsweep_sweep_dir", sweep_dir), ("mlpsweep_run_dir", run_dir)):
        if not OmegaConf.has_resolver(name):
            register_resolver(name, resolver)
