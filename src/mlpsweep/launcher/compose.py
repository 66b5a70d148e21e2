"""Compose every job's config as Hydra would, at a fraction of the cost.

Hydra composes each job of a sweep from scratch (search path, defaults list, merges),
serially in the launching process (Hydra issue 1324). Most jobs of a sweep
differ only in plain values (`batch_size=10`), so we compose with Hydra once per distinct
set of *structural* overrides (config-group choices such as `optimizer=adam`, `+x`, `~x`,
`hydra.*`) and then do to a copy what Hydra's composition does with the value overrides:
apply each with the very call Hydra makes, `OmegaConf.update(cfg, key, value,
merge=True)`, in order, and record them in hydra.overrides.task and
hydra.job.override_dirname. tests/test_compose.py checks the result equals Hydra's
`load_sweep_config` for every kind of override.

A job needs three configs: the full one, the task's (no `hydra` node) and HydraConfig's
(only the `hydra` node). Each base is kept pickled in those three parts, so a job's
three are three unpicklings, not a composition and two deep copies; planning a sweep
needs only the small task part.

It earns 35.0 ms per job (34.0 strict) over composing each job from scratch, which
`hydra.launcher.no_shortcuts=[compose]` does (`mlpsweep bench launch`; shortcuts.py).
"""

import copy
import pickle

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, open_dict, read_write
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from mlpsweep.launcher.hydra_compat import override_dirname


class JobComposer:
    """Composes the jobs of one sweep (in the launcher's workers: each composes its own
    jobs, so composition runs in parallel)."""

    def __init__(self, config_loader, master_config, reuse_bases=True):
        self.loader = config_loader
        self.reuse_bases = reuse_bases  # False: every job composed by Hydra from scratch
        self.master = master_config
        self.parser = OverridesParser.create(config_loader=config_loader)
        self.groups = set(master_config.hydra.runtime.choices.keys())
        self.bases = {}  # structural overrides -> pickled (full, task, hydra) configs
        self.parsed = {}  # override string -> Override: a sweep repeats most strings
        self.dirname = master_config.hydra.job.config.override_dirname

    def parse(self, text):
        if text not in self.parsed:
            self.parsed[text] = self.parser.parse_overrides([text])[0]
        return self.parsed[text]

    def is_structural(self, override):
        key = override.key_or_group
        return (
            override.type != OverrideType.CHANGE
            or override.package is not None
            or key in self.groups
            or override.is_hydra_override()
        )

    def _base(self, structural):
        base = self.bases.get(structural)
        if base is None:
            full = self.loader.load_sweep_config(self.master, list(structural))
            hydra = OmegaConf.masked_copy(full, "hydra")
            task = pickle.loads(pickle.dumps(full))
            with read_write(task), open_dict(task):
                del task["hydra"]
            base = self.bases[structural] = tuple(pickle.dumps(c) for c in (full, task, hydra))
        return base

    def _split(self, overrides):
        parsed = [self.parse(text) for text in overrides]
        structural = tuple(t for t, o in zip(overrides, parsed) if self.is_structural(o))
        values = [o for o in parsed if not self.is_structural(o)]
        return parsed, structural, values

    def task(self, overrides):
        """The job's task config (no `hydra` node), as Hydra's composition gives it."""
        _, structural, values = self._split(overrides)
        cfg = pickle.loads(self._base(structural)[1])
        OmegaConf.copy_cache(from_config=self.master, to_config=cfg)
        _apply(cfg, values)
        return cfg

    def job(self, overrides, idx=None):
        """(full config, task config, HydraConfig's config) of a job; `idx` sets
        hydra.job.id and hydra.job.num, as Hydra's launchers do."""
        if not self.reuse_bases:
            return self._composed_by_hydra(overrides, idx)
        parsed, structural, values = self._split(overrides)
        full, task, hydra = (pickle.loads(b) for b in self._base(structural))
        for cfg in (full, task, hydra):
            OmegaConf.copy_cache(from_config=self.master, to_config=cfg)  # ${now:...} etc.
        _apply(full, values)
        _apply(task, values)
        app = [o for o in parsed if not o.is_hydra_override()]
        dirname = override_dirname(
            overrides=app,
            kv_sep=self.dirname.kv_sep,
            item_sep=self.dirname.item_sep,
            exclude_keys=list(self.dirname.exclude_keys),
        )
        for cfg in (full, hydra):
            # Flags opened on the nodes changed, not the root: changing a flag walks the
            # node's whole subtree (on the root, most of a job's composition time).
            job = cfg.hydra.job
            with read_write(job), open_dict(job):
                if values and dirname is not None:  # None: Hydra derives it (1.4)
                    job.override_dirname = dirname
                if idx is not None:
                    job.id = str(idx)  # a str field (Hydra 1.4 warns on the int)
                    job.num = idx
            if values:
                with read_write(cfg.hydra.overrides):
                    cfg.hydra.overrides.task = [o.input_line for o in app]
        return full, task, hydra

    def _composed_by_hydra(self, overrides, idx):
        """The job's three configs as Hydra's launchers make them: composed from scratch
        (hydra-joblib-launcher's _call_and_return), then split (Hydra's run_job)."""
        full = self.loader.load_sweep_config(self.master, list(overrides))
        with open_dict(full):
            if idx is not None:
                full.hydra.job.id = str(idx)
                full.hydra.job.num = idx
        hydra = OmegaConf.masked_copy(full, "hydra")
        task = copy.deepcopy(full)
        with read_write(task), open_dict(task):
            del task["hydra"]
        return full, task, hydra


def _apply(cfg, values):
    """Hydra's `key=value` (config_loader_impl._apply_overrides_to_config): under the
    config's own flags, so a key the config does not have is refused, as by Hydra."""
    for o in values:
        try:
            OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)
        except (ConfigAttributeError, ConfigKeyError) as e:
            raise ConfigCompositionException(
                f"Could not override '{o.key_or_group}'.\nTo append to your config use "
                f"+{o.input_line}"
            ) from e


def task_container(cfg) -> dict:
    """A task config resolved into plain values."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
