"""The pure NumPy training core: no Hydra, no files, no processes."""

from mlpsweep.core.config import TrainConfig
from mlpsweep.core.network import MLP
from mlpsweep.core.train import TrainResult, train

__all__ = ["MLP", "TrainConfig", "TrainResult", "train"]
