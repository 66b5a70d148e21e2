"""The Hydra schema, derived from the knobs' one definition.

Training knobs are the fields of mlpsweep.core.TrainConfig (type, default, allowed values,
help); harness knobs are the fields of HarnessConfig below, defined the same way. From
them this module builds the structured config Hydra composes against (choices become
Enums, so a typo'd key, a wrong type or an unknown choice is rejected while Hydra
composes), the typed `optimizer` group (one node per optimizer, from its signature and
its RANGES), and the `python run.py --help` text. Value ranges are checked by
TrainConfig.validate / check_harness for every job before any job starts.
"""

import dataclasses
import enum
import inspect
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore

from mlpsweep.core import TrainConfig
from mlpsweep.core.checks import Range
from mlpsweep.core.config import knob
from mlpsweep.core.optimizers import OPTIMIZERS
from mlpsweep.data import DATASETS
from mlpsweep.records import RunMetrics

MAX_RETRIES = 10
# What an adaptive sweeper (Optuna) may tune: a scalar of a run's metrics.json declared an
# objective (records.metric), and which way is better. A failed, diverged or unmeasured
# run returns the worst value (+-inf).
OBJECTIVES = {
    m.name: "maximize" if m.higher else "minimize" for m in RunMetrics.metrics() if m.objective
}


@dataclass(frozen=True)
class HarnessConfig:
    """Knobs of the harness, not of the training: they never change a run's numbers or
    its run id, and they are not part of a run's recorded config."""

    sweep_name: str = knob("adhoc", "results/<sweep_name>/<time>/ (named sweeps set it)")
    resume: bool = knob(False, "-m: continue the newest sweep of this name (finished runs skipped)")
    extend: bool = knob(False, "-m: with resume, add this command's new runs to that sweep")
    dry_run: bool = knob(False, "list every job (and which are already done) without training")
    retries: int = knob(
        0, "run a failed job up to N more times", range=Range(0, MAX_RETRIES, integer=True)
    )
    report: bool = knob(True, "-m: build the report at the end")
    tensorboard: bool = knob(
        False,
        "write each run's TensorBoard event file in its record folder as it trains "
        '(pip install -e ".[tensorboard]"; tensorboard --logdir results/<sweep>)',
    )
    blas_threads: int = knob(
        1,
        "BLAS threads of a training job (1: numbers independent of n_jobs)",
        range=Range(1, integer=True),
    )
    study: dict | None = knob(
        None, "what the sweep asks: question, compare, nuisance, replicate, metrics"
    )
    max_memory: str = knob(
        "auto",
        "memory the concurrent runs may use, e.g. 16G (auto: what is available at the start)",
    )
    claim_timeout: float = knob(
        60.0,
        "seconds a running job's claim may miss its heartbeat before another sweep into the "
        "same folder takes the run over",
        range=Range(1),
    )
    halving: dict | None = knob(
        None,
        "-m: successive halving: metric, min_steps, eta, max_steps, within (see README)",
    )
    pause_at: int | None = knob(
        None,
        "-m: pause each run after this step, with a checkpoint (the halving sweeper sets it)",
        range=Range(1, integer=True),
    )
    objective: str = knob(
        "test_loss",
        "what a job returns to an adaptive sweeper (hydra/sweeper=optuna); "
        f"{' and '.join(m for m, way in OBJECTIVES.items() if way == 'maximize')} "
        "are maximised, the others minimised",
        choices=tuple(OBJECTIVES),
    )


HARNESS_KEYS = tuple(f.name for f in dataclasses.fields(HarnessConfig))
GROUP_KNOBS = ("optimizer", "optimizer_params")  # set through the optimizer group


def check_harness(container):
    """Range checks of the harness knobs (ConfigError, one line)."""
    for f in dataclasses.fields(HarnessConfig):
        if f.metadata.get("range") is not None and container.get(f.name) is not None:
            f.metadata["range"].check(f.name, container[f.name])
    objective = container.get("objective")
    if objective in ("steps_to_target", "examples_to_target") and not container.get("target"):
        from mlpsweep.core.checks import ConfigError

        raise ConfigError(  # else every run scores inf and the search learns nothing
            f"objective={objective} needs a target to reach, e.g. target=test_accuracy:0.9"
        )
    if container.get("tensorboard"):  # before any job trains, not in every job's log
        import importlib.util

        if importlib.util.find_spec("tensorboardX") is None:
            from mlpsweep.app.tensorboard import INSTALL
            from mlpsweep.core.checks import ConfigError

            raise ConfigError(INSTALL)


def _public(obj):
    """Make a generated class importable by name from this module (pickle finds classes
    by module and name: jobs' configs travel to worker processes)."""
    obj.__module__ = __name__
    globals()[obj.__name__] = obj
    return obj


def _hydra_type(f):
    """The type Hydra's structured config gets for a knob."""
    if f.metadata.get("choices") is not None:
        name = f.name.title().replace("_", "")
        return _public(enum.Enum(name, {c: c for c in f.metadata["choices"]}, module=__name__))
    if f.name == "hidden_sizes":
        return list[int] | None
    if f.type in (int, float, str, bool, "int", "float", "str", "bool"):
        return {"int": int, "float": float, "str": str, "bool": bool}.get(f.type, f.type)
    return Any


def _hydra_field(f, typ):
    default = f.default
    if isinstance(typ, type) and issubclass(typ, enum.Enum):
        default = typ[default]
    return (f.name, typ, field(default=default))


DatasetName = enum.Enum("DatasetName", {k: k for k in DATASETS})


@dataclass
class DatasetConf:
    name: DatasetName = DatasetName.mnist_5k
    data_dir: str | None = None  # else $MLPSWEEP_DATA_DIR, else the user cache dir


def schema_dataclass():
    """The structured config: every training knob, the optimizer and dataset groups,
    then the harness knobs."""
    fields = []
    for f in dataclasses.fields(TrainConfig):
        if f.name not in GROUP_KNOBS:
            fields.append(_hydra_field(f, _hydra_type(f)))
    fields.append(("optimizer", Any, field(default=None)))
    fields.append(("dataset", DatasetConf, field(default_factory=DatasetConf)))
    for f in dataclasses.fields(HarnessConfig):
        fields.append(_hydra_field(f, _hydra_type(f)))
    return _public(make_dataclass("Config", fields))


def optimizer_node(name):
    """The optimizer group's node for `name`: its parameters with their defaults, typed
    float (ranges are checked with the other values)."""
    params = inspect.signature(OPTIMIZERS[name]).parameters
    fields = [("name", str, field(default=name))]
    fields += [(p, float, field(default=v.default)) for p, v in params.items() if p != "lr"]
    return _public(make_dataclass(f"{name.title()}Conf", fields))


Config = schema_dataclass()
OPTIMIZER_NODES = {name: optimizer_node(name) for name in OPTIMIZERS}


NAME_WIDTH = 2 + max(
    len(f.name) for cls in (TrainConfig, HarnessConfig) for f in dataclasses.fields(cls)
)  # knob names never run into their help


def help_template():
    lines = [
        "${hydra.help.header}",
        "",
        "  python run.py [key=value ...]             one run, into results/single/<time>/",
        "  python run.py -m key=a,b [key=c,d ...]    a sweep: every combination, in parallel",
        "  python run.py -m +sweep=NAME              a named study from sweeps/",
        "",
        "Training knobs (value ranges are checked for every job before any job starts):",
    ]
    lines += [_help_line(f) for f in dataclasses.fields(TrainConfig) if f.name not in GROUP_KNOBS]
    lines.append(_row("optimizer", " | ".join(OPTIMIZERS), "sgd"))
    lines.append(
        f"  {'':<{NAME_WIDTH}}its parameters: optimizer.*, e.g. optimizer=momentum "
        "optimizer.momentum=0.5"
    )
    lines.append(_row("dataset", " | ".join(DATASETS), "mnist_5k") + " (dataset.data_dir=DIR)")
    lines += ["", "Harness knobs (never change a run's numbers):"]
    lines += [_help_line(f) for f in dataclasses.fields(HarnessConfig)]
    sweeps = named_sweeps()
    if sweeps:
        lines += ["", "Named sweeps (python run.py -m +sweep=NAME), each with its question:"]
        width = max(len(n) for n in sweeps) + 2
        lines += [f"  {name:<{width}}{question}" for name, question in sweeps.items()]
    lines += [
        "",
        "Launchers: hydra/launcher=mlpsweep (default; hydra.launcher.n_jobs=N, backend=loky|dask,",
        "  fail_fast=true), joblib, basic, submitit_slurm: every one writes the same run records.",
        "",
        "== Config groups ==",
        "$APP_CONFIG_GROUPS",
        "== Config (the defaults, as composed) ==",
        "$CONFIG",
        "",
        "${hydra.help.footer}",
    ]
    return "\n".join(lines)


def _help_line(f):
    choices = f.metadata.get("choices")
    rng = f.metadata.get("range")
    allowed = " | ".join(choices) if choices else (rng.describe() if rng else "")
    default = "null" if f.default is None else f.default
    text = f.metadata.get("help", "")
    return _row(f.name, text + (f": {allowed}" if allowed else ""), default)


def _row(name, text, default):
    """One knob: its name in a column wide enough for the longest, then its help."""
    return f"  {name:<{NAME_WIDTH}}{text}  [default {default}]"


def named_sweeps(folder=None) -> dict:
    """{name: the question its study asks} of the sweep files in sweeps/ (the checkout's;
    {} when there is none, e.g. an installed package)."""
    import yaml

    folder = Path(folder) if folder else Path(__file__).resolve().parents[3] / "sweeps"
    out = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            study = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("study") or {}
        except (OSError, yaml.YAMLError):
            continue
        out[path.stem] = str(study.get("question") or "(no question declared)")
    return out


def register():
    """Register the schema, the optimizer group, the help and the resolvers."""
    from mlpsweep.app.resolvers import register_resolvers

    register_resolvers()
    cs = ConfigStore.instance()
    cs.store(name="schema", node=Config)
    for name, node in OPTIMIZER_NODES.items():
        cs.store(group="optimizer", name=name, node=node)
    cs.store(
        group="hydra/help",
        name="mlpsweep",
        node={
            "app_name": "mlpsweep",
            "header": "mlpsweep: sweep NumPy MLP training settings with Hydra, in parallel.",
            "footer": "Full Hydra help: python run.py --hydra-help",
            "template": help_template(),
        },
    )
