"""mlpsweep: sweep MLP training settings with Hydra, in parallel, and report on them.

From Python (no Hydra):

    import mlpsweep
    sweep = mlpsweep.load("results/batch_oscillation/<time>")   # .runs, .history, .study
    sweep.importance()                          # what matters: variance shares with seeds
    both = mlpsweep.load(dir_a, dir_b)          # one Sweep over two sweeps' runs
    result = mlpsweep.train(mlpsweep.TrainConfig(batch_size=10), mlpsweep.dataset("mnist_5k"))
"""

__all__ = ["Sweep", "TrainConfig", "dataset", "load", "train"]


def load(*sweep_dirs, keep_apart=False):
    """A sweep's runs and history as DataFrames (mlpsweep.report.results.Sweep); given
    several sweeps, one Sweep over the union of their runs (`keep_apart`: a `sweep`
    column instead of one dataset)."""
    from mlpsweep.report.results import load as load_sweep

    return load_sweep(*sweep_dirs, keep_apart=keep_apart)


def train(config, dataset, blas_threads=1):
    """core.train under the BLAS thread count a sweep's job runs with (its `blas_threads`,
    default 1): a product's rounding depends on how many threads split it, so this gives
    the numbers of the sweep's record, bit for bit, whatever the machine's default.
    `config`: a TrainConfig, or a mapping of its knobs ({"batch_size": 10, "lr": 0.1};
    `optimizer` a name or {"name": "adam", "beta1": 0.8}, as in a run's config.yaml)."""
    from mlpsweep.core import train as train_core
    from mlpsweep.provenance import blas_controller

    config = train_config(config)
    with blas_controller().limit(limits=blas_threads):
        return train_core(config, dataset)


def train_config(config):
    """A TrainConfig from a TrainConfig or a mapping of its knobs; one line otherwise."""
    from collections.abc import Mapping
    from dataclasses import fields

    from mlpsweep.core import TrainConfig

    if isinstance(config, TrainConfig):
        return config
    if not isinstance(config, Mapping):
        raise TypeError(
            f"mlpsweep.train takes a TrainConfig or a mapping of its knobs, e.g. "
            f"{{'batch_size': 10, 'lr': 0.1}}, not a {type(config).__name__}"
        )
    knobs = {f.name for f in fields(TrainConfig)}
    kwargs = dict(config)
    unknown = sorted(set(kwargs) - knobs)
    if unknown:
        raise TypeError(
            f"mlpsweep.train: unknown knob {unknown[0]!r}; TrainConfig's knobs: "
            + ", ".join(sorted(knobs))
        )
    optimizer = kwargs.get("optimizer")
    if isinstance(optimizer, Mapping):  # a run's config.yaml form: {name: adam, beta1: ...}
        params = dict(optimizer)
        kwargs["optimizer"] = params.pop("name", "sgd")
        kwargs["optimizer_params"] = {**params, **dict(kwargs.get("optimizer_params") or {})}
    if kwargs.get("hidden_sizes") is not None:
        kwargs["hidden_sizes"] = tuple(kwargs["hidden_sizes"])
    return TrainConfig(**kwargs)


def dataset(name="mnist_5k", data_dir=None):
    """A dataset by name, as a sweep loads it (mnist_5k, mnist, fashion_mnist)."""
    from mlpsweep.data import load_dataset

    return load_dataset(name, data_dir=data_dir)


def __getattr__(name):  # the classes, without importing pandas or the core up front
    if name == "TrainConfig":
        from mlpsweep.core import TrainConfig

        return TrainConfig
    if name == "Sweep":
        from mlpsweep.report.results import Sweep

        return Sweep
    if name == "__version__":  # pyproject.toml's, read when asked (it costs milliseconds)
        from mlpsweep.provenance import harness_version

        return harness_version()
    raise AttributeError(f"module 'mlpsweep' has no attribute {name!r}")
