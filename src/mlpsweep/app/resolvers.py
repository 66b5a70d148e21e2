"""OmegaConf resolvers the configs use: the folders results go to.

A command that runs makes its folder as its name is chosen, exclusively
(records.layout.fresh_dir): Hydra asks for the name where the run or the sweep starts,
and uses it for every file after, so this is the one moment a name can be chosen and
taken at once; two commands started in the same second never share a folder. A command
that only shows its config (--cfg, --info, --help, ...: Hydra resolves the folders to
print them) or is a dry run names the folder and makes none: both read from the
resolver's own inputs, the command line and its `dry_run` argument.

They are registered with use_cache: Hydra resolves hydra.run.dir / hydra.sweep.dir more
than once, and copies the cache into every job's config, so all get the one answer.
"""

import datetime
import sys
from pathlib import Path

from omegaconf import OmegaConf

from mlpsweep.launcher.hydra_compat import only_shows_argv, register_resolver
from mlpsweep.records import SweepError, SweepManifest
from mlpsweep.records.layout import STAMP_FORMAT, check_name, fresh_dir

# Hydra's flags for a command that only shows (the config, its sources, the help).
SHOWING_FLAGS = {"--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help"}
SHOWING_FLAGS |= {"--shell-completion", "-sc"}


def only_shows(argv=None) -> bool:
    """The command (`argv`, default this process's) only shows, and runs no job: as
    Hydra's own parser reads it (abbreviated flags included), else by the flags' names."""
    args = sys.argv[1:] if argv is None else argv
    shows = only_shows_argv(args)
    if shows is not None:
        return shows
    return any(a.split("=", 1)[0] in SHOWING_FLAGS for a in args)


def folder(parent, make=True):
    """A fresh folder under `parent`, or (not `make`) the name it would get."""
    if not make:
        return Path(parent) / datetime.datetime.now().strftime(STAMP_FORMAT)
    return fresh_dir(parent)


def sweep_dir(root, name, resume=False, dry_run=False):
    """`root`/`name`/<time>: a new sweep folder, or with resume=true the newest existing
    one with a readable manifest (so rerunning the command finishes that sweep). `name`
    must be a plain folder name: a sweep never writes outside `root`. A new folder is
    made (and the folders killed commands left under it tidied) unless the command is a
    dry run or only shows its config."""
    parent = Path(str(root)) / check_name(name, "sweep_name", root)
    if resume:
        for candidate in sorted(parent.glob("*/"), key=made_order, reverse=True):
            try:
                SweepManifest.read(candidate)
            except SweepError:
                continue
            return str(candidate)
    make = not (dry_run or only_shows())
    if make:
        remove_abandoned(parent)
    return str(folder(parent, make))


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


def run_dir(root, dry_run=False):
    """`root`/<time>: a new folder for a single run (named, not made, for a dry run or a
    command that only shows its config)."""
    return str(folder(Path(str(root)), make=not (dry_run or only_shows())))


def register_resolvers():
    for name, resolver in (("mlpsweep_sweep_dir", sweep_dir), ("mlpsweep_run_dir", run_dir)):
        if not OmegaConf.has_resolver(name):
            register_resolver(name, resolver)
