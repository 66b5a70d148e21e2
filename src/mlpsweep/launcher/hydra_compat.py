"""Every use mlpsweep makes of Hydra's private API (and OmegaConf's), each with its
reason, and the Hydra versions it was checked on. Nothing else in mlpsweep imports
`hydra._internal`, reads or writes an underscore attribute of a Hydra object, or
writes to Hydra's singletons (HydraConfig, GlobalHydra, Singleton's state):
tests/test_hydra_compat.py fails on any of those outside this module, and on a Hydra
version not in CHECKED_HYDRA.

Checked on hydra-core 1.3.2 to 1.3.8 and 1.4.0rc3 (with OmegaConf 2.3 and 2.4.1rc1):

    use                                 1.3            1.4.0rc3
    BasicSweeper (its class, and        same           same
      _parse_config)
    hydra-optuna-sweeper 1.2's          same           same
      create_optuna_distribution_
      from_override
    get_overrides_dirname               used           gone: hydra.job.override_dirname
                                                       is a resolver over
                                                       hydra.overrides.task
    _save_config                        used           used (unchanged)
    deprecation_warning (chdir unset)   used           not needed: no version_base
                                                       below 1.3, chdir off
    node._set_parent                    used           used (unchanged)
    JobReturn._return_value             used           used (unchanged)
    HydraConfig.instance().cfg = ...    used           used (unchanged)
    GlobalHydra...config_loader()       used           used (unchanged)
    Singleton.get_state/set_state       used           used (unchanged)
    our run_job (runjob.py)             used           used, inside job_scope (1.4's
                                                       run_job runs the job under the
                                                       app's execution whitelist);
                                                       not mirrored: 1.4 resolves
                                                       env_set in the returned hydra
                                                       config and logs a failed job's
                                                       traceback to its log file
    version_base="1.3"                  required       deprecated (warns): omitted
    execution whitelist (instantiate)   -              mlpsweep.* trusted (else warns)
    OmegaConf.register_new_resolver     used           renamed register_resolver
    on_multirun_end                     after a sweep  also while the sweep's exception
                                        that returned  propagates: multirun_raised()
    override parse errors               "Error parsing override ..." after a new first
                                                       line (app/errors.py searches)
    _internal.utils.get_args_parser     used           used (unchanged): the command
      (only_shows_argv)                                line as hydra.main reads it
    plugin modules                      run again at   imported once (tests: discover
                                        each scan      them before saving Hydra's state)

After a Hydra release: run the launcher suites (tests/test_hydra_launcher_suites.py),
the compose equivalence tests (tests/test_compose.py) and the sweeper tests under it
(.ci/run does for the second Hydra); when they pass, add its minor version to
CHECKED_HYDRA and a column above.
"""

import contextlib
import functools
import io
import logging
import sys

import hydra
import omegaconf
from hydra._internal.deprecation_warning import deprecation_warning as _deprecation_warning
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import _save_config
from omegaconf import OmegaConf

log = logging.getLogger("mlpsweep")
CHECKED_HYDRA = ("1.3", "1.4")  # major.minor versions the uses below were checked with
HYDRA = tuple(int(p) for p in hydra.__version__.split(".")[:2])
HYDRA_14 = HYDRA >= (1, 4)

BASIC_SWEEPER_TARGET = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"

# initialize*(**VERSION_BASE): 1.3 needs version_base (else it falls back to 1.1's
# behaviour, with a warning); 1.4 deprecates the argument (a warning when given).
VERSION_BASE = {} if HYDRA_14 else {"version_base": "1.3"}
# The targets Hydra may instantiate from our configs without 1.4's warning (our callbacks).
TRUSTED = "mlpsweep.*"
# hydra.main(**MAIN_KWARGS): the above, and under 1.4 our callbacks trusted.
MAIN_KWARGS = {"execution_whitelist": TRUSTED} if HYDRA_14 else dict(VERSION_BASE)


__all__ = [
    "BASIC_SWEEPER_TARGET",
    "basic_sweeper",
    "chdir_default",
    "CHECKED_HYDRA",
    "config_loader",
    "hydra_state",
    "install_hydra_state",
    "job_scope",
    "MAIN_KWARGS",
    "multirun_raised",
    "only_shows_argv",
    "register_resolver",
    "trusting_mlpsweep",
    "override_dirname",
    "return_value",
    "save_config",
    "set_hydra_config",
    "set_parent",
    "sweep_params",
    "unchecked_hydra",
    "VERSION_BASE",
    "warn_if_unchecked",
]


def basic_sweeper() -> type:
    """Hydra's grid sweeper, which ours extends: the same sweep-override grammar, batching
    and `hydra.sweeper.params`, rather than a copy of them. Looked up when the sweeper
    module runs, not here: Hydra's plugin discovery executes its plugin modules again, and
    a subclass of a stale class fails in its super().__init__."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return BasicSweeper


def sweep_params(sweeper) -> list[str]:
    """`hydra.sweeper.params` as override strings, read the way Hydra's BasicSweeper reads
    them (its `_parse_config`): our sweeper keeps the basic sweeper's grammar exactly."""
    return sweeper._parse_config()


def optuna_distribution(override):
    """The Optuna distribution Hydra's Optuna sweeper makes of a sweep override (its
    `_impl.create_optuna_distribution_from_override`: the plugin has no public reading
    of a search dimension), so a search space is checked before its first trial exactly
    as the sweeper will read it. None where the plugin is not installed or lacks it."""
    try:
        from hydra_plugins.hydra_optuna_sweeper._impl import (
            create_optuna_distribution_from_override,
        )
    except ImportError:
        return None
    return create_optuna_distribution_from_override(override)


def override_dirname(overrides, kv_sep, item_sep, exclude_keys) -> str | None:
    """hydra.job.override_dirname exactly as Hydra 1.3's composition writes it (the
    composer sets it on a copied base config instead of composing each job anew). None
    under 1.4, where it is a resolver over hydra.overrides.task: nothing to set."""
    if HYDRA_14:
        return None
    from hydra._internal.config_loader_impl import get_overrides_dirname

    return get_overrides_dirname(
        overrides=overrides, kv_sep=kv_sep, item_sep=item_sep, exclude_keys=exclude_keys
    )


def save_config(cfg, filename, output_dir) -> None:
    """A job's .hydra/ file as Hydra's run_job writes it (our run_job skips run_job's
    config copies, not its files)."""
    _save_config(cfg, filename, output_dir)


def chdir_default() -> bool:
    """What an unset hydra.job.chdir means for this app: Hydra 1.3 changes directory
    (with Hydra's deprecation warning) only for version_base < 1.2, which we never
    pass; 1.4 never does."""
    if HYDRA_14:
        return False
    from hydra import version

    chdir = not version.base_at_least("1.2")
    if chdir:
        _deprecation_warning(
            "Future Hydra versions will no longer change working directory at job "
            "runtime by default (set hydra.job.chdir)."
        )
    return chdir


def set_parent(node, parent) -> None:
    """Re-parent the job's `hydra` node, as HydraConfig.set_config does on the copy it
    makes: ${...} in hydra.* may refer to the task's keys. Setting it on the node the
    composer already made saves run_job's deep copies of the job's config, the largest
    part of a short job's launch cost (`mlpsweep bench launch` shows the total)."""
    node._set_parent(parent)


def set_hydra_config(cfg):
    """Make `cfg` (a config holding only the `hydra` node, parented by set_parent) what
    HydraConfig.get() returns, and return the one it replaces. HydraConfig.set_config
    would make the same by deep-copying the job's whole config; this is that copy, made
    once by the composer."""
    instance = HydraConfig.instance()
    before, instance.cfg = instance.cfg, cfg
    return before


def config_loader():
    """The running Hydra's config loader, for a callback that composes jobs itself
    (SweepStart, before a sweeper other than ours launches anything): Hydra passes it
    to sweepers and launchers (hydra_context) but not to callbacks."""
    return GlobalHydra.instance().config_loader()


def hydra_state():
    """Hydra's process state (config store, job runtime, plugins), to send to a worker:
    how Hydra's joblib launcher gives its workers the launching process's state."""
    return Singleton.get_state()


def install_hydra_state(state) -> None:
    """Install hydra_state() in a worker process, as Hydra's joblib launcher does."""
    Singleton.set_state(state)


def job_scope(hydra_context):
    """What Hydra 1.4's run_job runs a job in: the app's execution whitelist (the targets
    hydra.main trusted) alone, for the job's instantiate() calls and its logging
    config. Nothing under 1.3."""
    if not HYDRA_14:
        return contextlib.nullcontext()
    from hydra.utils import execution_whitelist

    return execution_whitelist(hydra_context.execution_whitelist, reset=True)


def trusting_mlpsweep():
    """A context in which Hydra 1.4 instantiates our configs' targets (the callbacks)
    without its warning, as hydra.main(**MAIN_KWARGS) does: for Hydra run in-process
    (the tests' compose and multirun). Nothing under 1.3."""
    if not HYDRA_14:
        return contextlib.nullcontext()
    from hydra.utils import execution_whitelist

    return execution_whitelist(TRUSTED)


def multirun_raised() -> bool:
    """Whether on_multirun_end is being called while the sweep's exception propagates:
    Hydra 1.4 calls it in a `finally` (1.3 only after the sweep returned), and an
    end-of-sweep callback that then exits would replace that exception (the one-line
    error and its exit code) with its own."""
    return HYDRA_14 and sys.exc_info()[1] is not None


def only_shows_argv(argv) -> bool | None:
    """Whether the command line `argv` only shows (--cfg, --info, --help, --hydra-help,
    --shell-completion) as hydra.main reads it, abbreviations and attached values
    included (`--cf hydra`, `-chydra`); None where Hydra's parser cannot read it. Why
    private: Hydra has no public parse of its own flags."""
    from hydra._internal.utils import get_args_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # Hydra's own run says what is wrong
            known, _ = get_args_parser().parse_known_args(list(argv))
    except SystemExit:  # argparse refuses it
        return None
    return bool(known.cfg or known.info or known.help or known.hydra_help or known.shell_completion)


def register_resolver(name, resolver) -> None:
    """A cached OmegaConf resolver: OmegaConf 2.4 (Hydra 1.4) renames
    register_new_resolver to register_resolver, and warns on the old name; 2.3's
    register_resolver is the legacy one, with other semantics."""
    if tuple(int(p) for p in omegaconf.__version__.split(".")[:2]) >= (2, 4):
        OmegaConf.register_resolver(name, resolver, use_cache=True)
    else:
        OmegaConf.register_new_resolver(name, resolver, use_cache=True)


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
        f"hydra-core=={CHECKED_HYDRA[0]}.*"
    )
