"""The jobs of a grid sweep with zip groups: Hydra's sweep overrides expanded as Hydra's
basic sweeper does, except that the keys of one zip group advance together. Used by our
sweeper (hydra/sweeper=mlpsweep) and by the sweep-start callback, which plans a basic
sweeper's jobs (no zips) the same way."""

import itertools
from collections import OrderedDict

from hydra.errors import HydraException


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
    seen = {}
    for group in zip_groups or []:
        if isinstance(group, str) or not group or not all(isinstance(k, str) for k in group):
            raise HydraException(
                f"zip {group!r}: each zip is a list of swept keys, e.g. zip=[[batch_size,lr]]"
            )
        for k in group:
            if k in seen:
                raise HydraException(
                    f"zip: {k} is in two zips ({list(seen[k])} and {list(group)}); "
                    "each key advances with one zip"
                )
            seen[k] = group
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
