"""hydra/sweeper=mlpsweep: Hydra's basic sweeper plus zipped (paired) parameters.

    hydra:
      sweeper:
        params: {batch_size: "10,100,1000", lr: "0.01,0.1,1.0", seed: "range(3)"}
        zip: [[batch_size, lr]]      # 3 pairs x 3 seeds = 9 jobs, not 27

Keys in one zip group advance together (their value lists must be equally long); every
other swept key is crossed with them as usual. The per-job config check that Hydra's
sweeper runs serially (a full composition per job) is left to the launcher, which
composes and validates every job, faster, before any job starts.
"""

import itertools
from collections import OrderedDict
from dataclasses import dataclass

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException


@dataclass
class MlpsweepSweeperConf:
    _target_: str = "hydra_plugins.mlpsweep_plugins.sweeper.MlpsweepSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None
    zip: list[list[str]] | None = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="mlpsweep", node=MlpsweepSweeperConf, provider="mlpsweep"
)


def zipped_product(overrides, zip_groups):
    """The jobs' override lists: zip groups advance together, the rest is crossed."""
    axes = OrderedDict()
    for o in overrides:
        key = o.get_key_element()
        if o.is_sweep_override():
            if not o.is_discrete_sweep():
                raise HydraException(f"mlpsweep sweeper: {key}: only discrete sweeps (a,b,c)")
            axes[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:
            axes[key] = [f"{key}={o.get_value_element_as_str()}"]
    entries = OrderedDict((k, [[v] for v in vals]) for k, vals in axes.items())
    for group in zip_groups or []:
        missing = [k for k in group if k not in entries]
        if missing:
            raise HydraException(f"zip {list(group)}: {', '.join(missing)} not swept")
        lengths = {k: len(entries[k]) for k in group}
        if len(set(lengths.values())) != 1:
            raise HydraException(f"zip {list(group)}: value lists differ in length {lengths}")
        paired = [sum(vals, []) for vals in zip(*(entries[k] for k in group))]
        first = group[0]
        entries = OrderedDict(
            (k, paired if k == first else v)
            for k, v in entries.items()
            if k == first or k not in group
        )
    return [sum(combo, []) for combo in itertools.product(*entries.values())]


class MlpsweepSweeper(BasicSweeper):
    def __init__(self, max_batch_size=None, params=None, zip=None):
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.zip = [list(g) for g in (zip or [])]

    def split_arguments(self, overrides, max_batch_size):
        jobs = zipped_product(overrides, self.zip)
        return [list(chunk) for chunk in self.split_overrides_to_chunks(jobs, max_batch_size)]

    def validate_batch_is_legal(self, batch):
        pass  # the launcher composes and validates every job before any job starts
