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

import itertools
import sys
import traceback
from enum import Enum
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, IntervalSweep, RangeSweep
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
from mlpsweep.launcher.compose import JobComposer, task_container
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
        # Hydra runs a callback under `except Exception` and only warns: an error raised
        # here would let the sweep train as if its checks had passed. Ours are BadInput
        # (a SystemExit, which passes); anything else is turned into one too.
        try:
            self.start(config)
        except Exception as exc:  # noqa: BLE001 - said in one line, and the sweep ends
            refuse_unexpected(exc, config)

    def start(self, config):
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
            check_searched_once(parsed)
            if name == "optuna":
                check_direction(config, spec.objective)
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


def check_searched_once(parsed):
    """A knob searched and also fixed: the sweeper would run every trial with the fixed
    value and call the search done (ValueError, naming both)."""
    key = lambda o: o.get_key_element().lstrip("+~")  # noqa: E731
    searched = {key(o): o.input_line for o in parsed if o.is_sweep_override()}
    for o in parsed:
        if not o.is_sweep_override() and key(o) in searched:
            raise ValueError(
                f"{searched[key(o)]} and {o.input_line}: {key(o)} is searched and fixed at "
                "once (every trial would run the fixed value): give one of them"
            )


def check_direction(config, objective):
    """Optuna's direction must be the objective's (ValueError): a test accuracy
    minimised picks the worst run as the best."""
    from mlpsweep.app.schema import OBJECTIVES

    direction = config.hydra.sweeper.get("direction", "minimize")
    if not isinstance(direction, (str, Enum)):
        return  # several objectives: Hydra's multi-objective form, not ours to judge
    given = getattr(direction, "name", str(direction)).lower()
    wanted = OBJECTIVES.get(objective)
    if wanted is not None and given != wanted:
        raise ValueError(
            f"hydra.sweeper.direction={given} with objective={objective}, which is "
            f"{wanted[:-1]}ed: the search would look for the worst runs; give "
            f"hydra.sweeper.direction={wanted}"
        )


def refuse_unexpected(exc, config):
    """An error on_multirun_start did not expect, as run_main says any error: one line,
    exit status 2 (1 for a JobError), the traceback first if the user asked for it
    (HYDRA_FULL_ERROR=1). Raised as a SystemExit, which Hydra's callbacks let through."""
    from mlpsweep.app.errors import TRACEBACK_HINT, JobError, one_line, user_wants_tracebacks

    try:
        remove_if_empty(Path(config.hydra.sweep.dir))
    except Exception:  # noqa: BLE001, S110 - the error being reported matters more
        pass
    if user_wants_tracebacks():
        traceback.print_exception(exc)
    if isinstance(exc, JobError):
        print(f"mlpsweep: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    message = one_line(exc).replace("\n", " ")
    raise BadInput(f"{message} {TRACEBACK_HINT}") from None


# What scores an adaptive sweeper's trials: one measure for all of them, or its "best"
# compares a test loss with an accuracy.
SCORE_KNOBS = ("objective", "target")


def check_proposals(composer, loader, fixed, sweeps, sweeper):
    """An adaptive sweeper's search space, checked before its first trial: no knob that
    scores the trials is searched, each dimension is one the sweeper can search, and
    every trial it may propose composes into a run that is accepted: every combination
    of the config groups' choices, with each choice (and each end of a range or an
    interval) of every other dimension, as the sweeper proposes them all together in
    every trial (a knob that exists in one group option and not in another fails there).
    ValueError (one line) otherwise."""
    groups = set(loader.list_groups(""))
    space = {}  # key -> (override, values): a key searched twice is searched as the last
    for override in sweeps:
        key = override.get_key_element()
        if key in SCORE_KNOBS:
            raise ValueError(
                f"{key}: searched by hydra/sweeper={sweeper}, whose trials would then be "
                f"scored by different measures and its best value would compare them; fix "
                f"{key}=… and search the training knobs"
            )
        values = proposal_ends(override, sweeper, loader, groups)
        if key in groups:
            options = loader.get_group_options(key)
            for value in values:
                if value not in options:
                    raise ValueError(
                        f"{override.input_line}: it may propose {key}={value}: no such "
                        f"{key} (available: {', '.join(options)})"
                    )
        space[key] = (override, values)
    chosen = {k: v for k, v in space.items() if k in groups}
    combos = list(itertools.product(*[[f"{k}={v}" for v in vs] for k, (_, vs) in chosen.items()]))
    for combo in combos:  # the groups' choices alone (with the fixed settings)
        error = compose_error(composer, [*fixed, *combo])
        if error is not None:
            lines = " ".join(o.input_line for o, _ in chosen.values())
            error = without_prefix(error, combo)
            raise ValueError(f"{lines}: it may propose {' '.join(combo)}: {error}")
    for key, (override, values) in space.items():
        if key in groups:
            continue
        failed = {}  # combination -> (value, error): the first value refused with it
        for value in values:
            for combo in combos:
                if combo not in failed:
                    error = compose_error(composer, [*fixed, *combo, f"{key}={value}"])
                    if error is not None:
                        failed[combo] = (value, error)
        if failed:
            raise ValueError(refusal(override, key, combos, failed, sweeper))


def refusal(override, key, combos, failed, sweeper):
    """The line for a searched value refused (with some combination of the groups'
    choices): what it may propose, why that is refused, and how to search it instead."""
    combo = next(c for c in combos if c in failed)
    value, error = failed[combo]
    error = without_prefix(error, [f"{key}={value}", *combo])
    line = f"{override.input_line}: it may propose {key}={value}"
    if combo:
        line += f" with {' '.join(combo)}"
    line += f": {error}"
    numbers = [getattr(override.value(), a, None) for a in ("start", "stop", "end", "step")]
    if "to Integer" in error and any(isinstance(n, float) for n in numbers):
        line += f"; {key} is an integer: give the range or interval integer ends and step"
    works = [c for c in combos if c not in failed]
    if works:  # a dimension that exists with some of the groups' options only
        where = " or ".join(" ".join(c) for c in works)
        line += (
            f"; hydra/sweeper={sweeper} proposes every searched knob in every trial, "
            f"whichever options it picks: search {key} in a sweep of its own, with {where}"
        )
    return line


def without_prefix(error, proposed):
    """`error` without its own statement of a value the line states already ("lr=-1.0:
    must be > 0" after "it may propose lr=-1.0")."""
    for text in proposed:
        if error.startswith(f"{text}: "):
            return error[len(text) + 2 :]
    return error


def compose_error(composer, overrides):
    """None if a trial with these overrides composes into a run that is accepted, else
    why not (one line): the error that trial would fail with, after others had run."""
    from mlpsweep.app.errors import one_line
    from mlpsweep.app.spec import run_spec

    try:
        run_spec(task_container(composer.task(overrides)), tuple(overrides))
    except Exception as e:  # noqa: BLE001 - whatever refuses the trial refuses it here
        return one_line(e).replace("\n", " ")
    return None


def proposal_ends(override, sweeper, loader, groups):
    """The values of a search dimension worth checking: every choice, a range's or an
    interval's two ends; as the sweeper reads them where it is Optuna (whose ranges
    include their stop). ValueError for a dimension the sweeper cannot search."""
    value = override.value()
    key = override.get_key_element()
    if isinstance(value, Glob):  # Hydra's basic sweeper's alone
        options = loader.get_group_options(key) if key in groups else []
        listed = f"choice({','.join(value.filter(options))})" if options else "choice(a,b,...)"
        raise ValueError(
            f"{override.input_line}: glob is not supported by hydra/sweeper={sweeper}: list "
            f"the options with choice(...), e.g. {key}={listed}"
        )
    if isinstance(value, RangeSweep) and (value.step or 0) <= 0:
        upwards = f"range({value.stop},{value.start},step={-value.step})" if value.step else ""
        raise ValueError(
            f"{override.input_line}: hydra/sweeper={sweeper} searches a range upwards, "
            f"from its start: its step must be > 0" + (f", e.g. {key}={upwards}" if upwards else "")
        )
    if sweeper == "optuna":
        ends = optuna_ends(override)
        if ends is not None:
            return ends
    if isinstance(value, IntervalSweep):
        return [value.start, value.end]
    values = list(override.sweep_string_iterator())
    return [values[0], values[-1]] if isinstance(value, RangeSweep) and values else values


def optuna_ends(override):
    """The choices, or the low and high ends, of the distribution Hydra's Optuna sweeper
    makes of this dimension (its ranges' stop included, as Optuna's are); None if the
    plugin's function is not there to ask (another version)."""
    from mlpsweep.launcher.hydra_compat import optuna_distribution

    try:
        made = optuna_distribution(override)
    except Exception as e:  # noqa: BLE001 - the sweeper would raise it before its first trial
        text = str(e).strip().splitlines()
        raise ValueError(
            f"{override.input_line}: hydra/sweeper=optuna cannot search it: "
            f"{text[0] if text else type(e).__name__}"
        ) from None
    if made is None:
        return None
    choices = getattr(made, "choices", None)
    return list(choices) if choices is not None else [made.low, made.high]


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
