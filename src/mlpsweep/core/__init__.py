"""The pure NumPy training core: no Hydra, no files, no processes.

"The listing", throughout the code: the program this project began from, the study
note's 784-200-200-10 MLP trained with plain SGD on MNIST in the style of "Deep Learning
from Scratch" (its runnable copy is the seed study's day60_reference.py). Its choices are
knobs here (grad_reduction=sum, sampler=with_replacement, rng=legacy, init=0.01,
loss_eps=1e-7), and with them train() replays its losses operation for operation
(tests/test_train.py checks that against the listing's own arithmetic).
"""

from mlpsweep.core.config import TrainConfig
from mlpsweep.core.network import MLP
from mlpsweep.core.train import TrainResult, train

__all__ = ["MLP", "TrainConfig", "TrainResult", "train"]
