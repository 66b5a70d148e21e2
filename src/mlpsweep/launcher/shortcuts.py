"""The launcher's departures from Hydra's public path, by name.

Each one saves time per job over what Hydra's own launchers do, and each can be turned
off (`hydra.launcher.no_shortcuts=[compose]`, or `[all]`) to take Hydra's public path
instead: a fallback should a Hydra release change what one mirrors, and the way
`mlpsweep bench launch` measures what each earns (its module's docstring quotes it).
"""

from mlpsweep.launcher.failures import EngineError

SHORTCUTS = {
    "run_job": "our run_job (runjob.py), not Hydra's, which copies each job's config four times",
    "compose": "each job from its config-group choices' composed base (compose.py), not "
    "composed from scratch by Hydra",
    "state_once": "Hydra's state sent to a loky worker once as it starts, not with every "
    "job (worker.py)",
    "lazy_returns": "a job's two configs travel back pickled, unpickled only if read (returns.py)",
    "warm_up": "workers started while the sweep is planned (warmup.py)",
}


def shortcuts_on(no_shortcuts) -> frozenset[str]:
    """The shortcuts in use, given the names turned off; an unknown name is refused."""
    off = set(no_shortcuts or ())
    if "all" in off:
        return frozenset()
    unknown = sorted(off - set(SHORTCUTS))
    if unknown:
        raise EngineError(
            f"hydra.launcher.no_shortcuts: no shortcut named {', '.join(unknown)} "
            f"(known: {', '.join(SHORTCUTS)}, or all)"
        )
    return frozenset(SHORTCUTS) - off
