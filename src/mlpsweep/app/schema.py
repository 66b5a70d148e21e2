"""The typed config a researcher sweeps, registered in Hydra's ConfigStore.

Types and Enums make Hydra reject a typo'd key, a wrong type or an unknown choice while
it composes the config; the value ranges (lr > 0, ...) are checked by
TrainConfig.validate for every job of a sweep before any job starts.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore

Activation = Enum("Activation", {k: k for k in ("relu", "sigmoid", "tanh")})
DType = Enum("DType", {k: k for k in ("float32", "float64")})
Reduction = Enum("Reduction", {k: k for k in ("mean", "sum")})
Sampler = Enum("Sampler", {k: k for k in ("with_replacement", "epoch")})
RngMode = Enum("RngMode", {k: k for k in ("default", "legacy")})
DatasetName = Enum("DatasetName", {k: k for k in ("mnist_5k", "mnist", "fashion_mnist")})


@dataclass
class DatasetConf:
    name: DatasetName = DatasetName.mnist_5k
    data_dir: str | None = None  # else $MLPSWEEP_DATA_DIR, else the user cache dir


@dataclass
class Config:
    # what is trained
    depth: int = 2
    width: int = 200
    hidden_sizes: list[int] | None = None
    activation: Activation = Activation.relu
    init: Any = "he"  # a std (the listing: 0.01), or xavier / he
    weight_decay: float = 0.0
    dropout: float = 0.0
    # how
    optimizer: dict[str, Any] = field(default_factory=dict)  # from the optimizer group
    lr: float = 0.1
    batch_size: int = 100
    steps: int = 1000
    eval_every: int = 100
    seed: int = 0
    dtype: DType = DType.float32
    grad_reduction: Reduction = Reduction.mean
    sampler: Sampler = Sampler.with_replacement
    rng: RngMode = RngMode.default
    loss_eps: float = 0.0
    dataset: DatasetConf = field(default_factory=DatasetConf)
    # the harness
    sweep_name: str = "adhoc"
    resume: bool = False  # -m: continue the newest sweep of this name (skips finished runs)
    extend: bool = False  # -m: let resume add this command's new runs to that sweep
    dry_run: bool = False  # list the jobs (and which are done) without training
    fail_fast: bool = False  # -m: stop at the first failed job
    retries: int = 0  # run a failed job up to this many more times
    report: bool = True


def register():
    """Register the schema (and the resolvers the configs use) with Hydra / OmegaConf."""
    from mlpsweep.app.resolvers import register_resolvers

    register_resolvers()
    ConfigStore.instance().store(name="schema", node=Config)
