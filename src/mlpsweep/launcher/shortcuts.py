"""The launcher's departures from Hydra's public path, by name.

Each one saves time per job over what Hydra's own launchers do, and each can be turned
off (`hydra.launcher.no_shortcuts=[compose]`, or `[all]`) to take Hydra's public path
instead: a fallback should a Hydra release change what one mirrors, and the way
`mlpsweep bench launch` measures what each earns (its module's docstring quotes it).

What each earned, 2026-12-06 (AMD EPYC, 2 workers, 200 one-step jobs with the report,
best of 3 interleaved rounds; ms per job, marginal and strict as the bench prints them;
a shortcut must earn ~2 ms per job to stay):

    compose        35.0  34.0
    run_job         5.9   5.1
    lazy_returns    2.7   2.1
    state_once      1.9   2.4   (a 7-round rerun of the 200-job sweep alone: 2.3 median)
    warm_up         0.7   0.5   removed (workers started while the sweep was planned;
                                 the 7-round rerun: 0.7 median)
"""

from mlpsweep.launcher.failures import EngineError

SHORTCUTS = {
    "run_job": "our run_job (runjob.py), not Hydra's, which copies each job's config four times",
    "compose": "each job from its config-group choices' composed base (compose.py), not "
    "composed from scratch by Hydra",
    "state_once": "Hydra's state sent to a loky worker once as it starts, not with every "
    "job (worker.py)",
    "lazy_returns": "a job's two configs travel back pickled, unpickled only if read (returns.py)",
}


def shortcuts_on(no_shortcuts) -> frozenset[str]:
    """The shortcuts in use, given the names turned off; anything but known names (or
    all) is refused, typos beside `all` included."""
    names = list(no_shortcuts or ())
    known = f"known: {', '.join(SHORTCUTS)}, or all"
    odd = [n for n in names if not isinstance(n, str)]
    if odd:
        raise EngineError(
            f"hydra.launcher.no_shortcuts: a list of names, e.g. [compose] ({known}); "
            f"got {odd[0]!r}"
        )
    unknown = sorted(set(names) - set(SHORTCUTS) - {"all"})
    if unknown:
        raise EngineError(
            f"hydra.launcher.no_shortcuts: no shortcut named {', '.join(unknown)} ({known})"
        )
    return frozenset() if "all" in names else frozenset(SHORTCUTS) - set(names)
