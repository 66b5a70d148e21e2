"""SweepStart (a Hydra callback, on_multirun_start): every sweeper's sweep writes its
manifest before its first job, so `resume=true` and `mlpsweep report` work after a kill
whichever sweeper ran it.

Our sweeper's planner does that itself. For Hydra's basic sweeper the jobs are known up
front: they are expanded and planned here exactly as ours would (every job checked, a
refused value is one line and exit 2 before anything trains). An adaptive sweeper
(Optuna) proposes its jobs as it goes: its fixed settings are checked, and the manifest
starts with no runs; the end-of-sweep callback lists the runs it made, in the order they
finished.
"""

import sys
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, RangeSweep
from hydra.experimental.callback import Callback

from mlpsweep import records
from mlpsweep.app.plan import (
    BadInput,
    check_study,
    compose_all,
    config_keys,
    plan_sweep,
    remove_if_empty,
)
from mlpsweep.launcher.compose import JobComposer
from mlpsweep.launcher.hydra_compat import BASIC_SWEEPER_TARGET, config_loader
from mlpsweep.launcher.sweep_grid import zipped_product
from mlpsweep.provenance import code_version, harness_version
from mlpsweep.records import layout


def sweeper_name(config):
    """'mlpsweep' (ours, which plans its sweep itself: it has a planner), 'basic', or the
    sweeper's class name in lower case, less "sweeper" ('optuna')."""
    target = str(config.hydra.sweeper.get("_target_", ""))
    if config.hydra.sweeper.get("planner"):
        return "mlpsweep"
    if target == BASIC_SWEEPER_TARGET:
        return "basic"
    return target.rpartition(".")[2].lower().removesuffix("sweeper") or "unknown"


def sweep_overrides(config):
    """The sweep's overrides as Hydra's sweepers read them: hydra.sweeper.params entries,
    then the command line's."""
    params = config.hydra.sweeper.get("params") or {}
    return [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)


class SweepStart(Callback):
    def on_multirun_start(self, config, **kwargs):
        name = sweeper_name(config)
        if name == "mlpsweep":
            return  # our planner writes the manifest (with the jobs checked) itself
        if config.get("halving") is not None:  # only our sweeper stops runs at rungs
            raise BadInput(
                f"halving: only mlpsweep's own sweeper halves (hydra/sweeper={name} would "
                "train every run to the end): leave hydra/sweeper out, or halving out"
            )
        loader = config_loader()
        parser = OverridesParser.create(config_loader=loader)
        parsed = parser.parse_overrides(sweep_overrides(config))
        sweep_dir = Path(config.hydra.sweep.dir)
        problem = layout.foreign_folder(sweep_dir, records.MANIFEST)
        if problem is not None:  # another sweeper's sweep into someone else's folder
            raise BadInput(problem)
        if name == "optuna":
            plain_optuna_log()
        if name == "basic":
            plan_sweep(config, loader, zipped_product(parsed, None))
            return
        fixed = [
            f"{o.get_key_element()}={o.get_value_element_as_str()}"
            for o in parsed
            if not o.is_sweep_override()
        ]
        try:
            composer = JobComposer(loader, config)
            [spec] = compose_all(composer, [fixed])
            searched = [o for o in parsed if o.is_sweep_override()]
            check_proposals(composer, loader, fixed, searched, name)
            study = check_study(config, config_keys(spec))
        except ValueError as e:
            remove_if_empty(sweep_dir)
            raise BadInput(str(e)) from None
        except BadInput:
            remove_if_empty(sweep_dir)
            raise
        if config.get("dry_run", False) or records.SweepManifest.exists(sweep_dir):
            return  # a rerun into the same folder keeps its manifest (and reuses records)
        records.SweepManifest(
            runs=[],
            command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            cwd=str(Path.cwd()),
            sweep_name=str(config.get("sweep_name", "adhoc")),
            code=code_version(),
            data={spec.identity.dataset: spec.identity.data_fingerprint},
            study=study,
            sweeper=name,
            objective=spec.objective,
            harness=harness_version(),
        ).write(sweep_dir)


# What scores an adaptive sweeper's trials: one measure for all of them, or its "best"
# compares a test loss with an accuracy.
SCORE_KNOBS = ("objective", "target")


def check_proposals(composer, loader, fixed, sweeps, sweeper):
    """An adaptive sweeper's search space, checked before its first trial: no knob that
    scores the trials is searched, and every choice (and each end of a range or an
    interval) is a value a run accepts. ValueError (one line) otherwise."""
    for override in sweeps:
        key = override.get_key_element()
        if key in SCORE_KNOBS:
            raise ValueError(
                f"{key}: searched by hydra/sweeper={sweeper}, whose trials would then be "
                f"scored by different measures and its best value would compare them; fix "
                f"{key}=… and search the training knobs"
            )
        groups = loader.list_groups("")
        for value in proposal_ends(override):
            if key in groups and value not in loader.get_group_options(key):
                options = ", ".join(loader.get_group_options(key))
                raise ValueError(
                    f"{override.input_line}: it may propose "
                    f"{key}={value}: no such {key} (available: {options})"
                )
            try:
                compose_all(composer, [[*fixed, f"{key}={value}"]])
            except ValueError as e:
                raise ValueError(
                    f"{override.input_line}: it may propose {key}={value}: {e}"
                ) from None


def proposal_ends(override):
    """The values of a search dimension worth checking: every choice, a range's or an
    interval's two ends (none for a glob of config-group options)."""
    value = override.value()
    if isinstance(value, IntervalSweep):
        return [value.start, value.end]
    try:
        values = list(override.sweep_string_iterator())
    except Exception:  # noqa: BLE001 - a glob: its options are the config group's own
        return []
    return [values[0], values[-1]] if isinstance(value, RangeSweep) and values else values


def plain_optuna_log():
    """Optuna's log lines without colour codes where stderr is not a terminal (a log
    file, CI): its colorlog formatter colours unless told the stream it writes to."""
    import logging

    try:
        import optuna.logging
    except ImportError:
        return
    optuna.logging.get_logger("optuna")  # sets up its default handler
    for handler in logging.getLogger("optuna").handlers:
        formatter = handler.formatter
        stream = getattr(handler, "stream", None)
        if hasattr(formatter, "no_color") and not (
            stream and not stream.closed and stream.isatty()
        ):
            formatter.no_color = True
