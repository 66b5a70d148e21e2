"""Every use mlpsweep makes of Hydra's private API (and OmegaConf's), each with its
reason, and the Hydra versions they were checked against. Nothing else in mlpsweep
imports `hydra._internal` or reads a private attribute of Hydra's objects:
tests/test_hydra_compat.py fails on a Hydra version not in CHECKED_HYDRA, and on a
private use anywhere but here.

After a Hydra release: run the launcher suites (tests/test_hydra_launcher_suites.py),
the compose equivalence tests (tests/test_compose.py) and the sweeper tests; when they
pass, add its minor version to CHECKED_HYDRA.
"""

import functools
import logging

import hydra
from hydra._internal.config_loader_impl import get_overrides_dirname as _dirname
from hydra._internal.deprecation_warning import deprecation_warning
from hydra.core.utils import _save_config

log = logging.getLogger("mlpsweep")
CHECKED_HYDRA = ("1.3",)  # major.minor versions the uses below were checked with

BASIC_SWEEPER_TARGET = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"

__all__ = [
    "BASIC_SWEEPER_TARGET",
    "basic_sweeper",
    "CHECKED_HYDRA",
    "deprecation_warning",  # run_job: the warning Hydra gives when hydra.job.chdir is unset
    "override_dirname",
    "return_value",
    "save_config",
    "set_parent",
    "unchecked_hydra",
    "warn_if_unchecked",
]


def basic_sweeper() -> type:
    """Hydra's grid sweeper, which ours extends: the same sweep-override grammar, batching
    and `hydra.sweeper.params`, rather than a copy of them. Looked up when the sweeper
    module runs, not here: Hydra's plugin discovery executes its plugin modules again, and
    a subclass of a stale class fails in its super().__init__."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return BasicSweeper


def override_dirname(overrides, kv_sep, item_sep, exclude_keys) -> str:
    """hydra.job.override_dirname exactly as Hydra's composition writes it (the composer
    sets it on a copied base config instead of composing each job anew)."""
    return _dirname(
        overrides=overrides, kv_sep=kv_sep, item_sep=item_sep, exclude_keys=exclude_keys
    )


def save_config(cfg, filename, output_dir) -> None:
    """A job's .hydra/ file as Hydra's run_job writes it (our run_job skips run_job's
    config copies, not its files)."""
    _save_config(cfg, filename, output_dir)


def set_parent(node, parent) -> None:
    """Re-parent the job's `hydra` node, as HydraConfig.set_config does on the copy it
    makes: ${...} in hydra.* may refer to the task's keys. Setting it on the node the
    composer already made saves run_job's deep copies of the job's config, the largest
    part of a short job's launch cost (`mlpsweep bench launch` shows the total)."""
    node._set_parent(parent)


def return_value(job_return) -> object:
    """What the job returned, or the exception it raised: JobReturn.return_value raises
    the exception for a failed job, and a launcher or sweeper that reports failures as
    data needs to look at it without raising it."""
    return job_return._return_value


@functools.cache
def warn_if_unchecked() -> None:
    """Log unchecked_hydra()'s warning, once a process (the launcher calls it)."""
    warning = unchecked_hydra()
    if warning:
        log.warning(warning)


def unchecked_hydra() -> str | None:
    """A one-line warning when the installed Hydra is not one this module was checked
    with, else None."""
    minor = ".".join(hydra.__version__.split(".")[:2])
    if minor in CHECKED_HYDRA:
        return None
    return (
        f"Hydra {hydra.__version__} is installed; mlpsweep's launcher and sweeper use "
        f"private parts of Hydra checked only with {', '.join(CHECKED_HYDRA)} "
        "(mlpsweep/launcher/hydra_compat.py): if a sweep misbehaves, install "
        f"hydra-core=={CHECKED_HYDRA[-1]}.*"
    )
