"""How much memory one training run needs, estimated before it starts.

Calibrated on this code's peak resident memory (a 784-6000-6000-10 network, float32 and
float64, batch 100 and 4000, every optimizer): within ~10%. The parts:
- the weights, counted in copies of the parameter vector: parameters and gradients,
  the optimizer's state and the temporaries its update makes (OPTIMIZER_COPIES);
- the activations of a batch and of an evaluation chunk (forward values, their
  gradients and the float copy of the input: ~4 arrays of batch x all layer widths);
- with noise_probe, a gradient-sized sum at the run's dtype and two float64 copies;
- the trajectory probe's inputs, normalised once (n x inputs floats; `all`: the train set,
  taken as 60,000 rows when its size is not given);
- the process itself (Python, NumPy, the shared uint8 data): PROCESS_BYTES.
"""

import re

import numpy as np

OPTIMIZER_COPIES = {
    "sgd": 2.0,
    "momentum": 3.5,
    "nesterov": 4.5,
    "adagrad": 5.5,
    "rmsprop": 5.5,
    "adam": 8.5,
}
ACTIVATION_COPIES = 4
EVAL_CHUNK = 256  # rows of an evaluation chunk (network.MLP.evaluate)
PROCESS_BYTES = 200 * 2**20


def run_bytes(config, input_size: int, num_classes: int, train_size: int = 60_000) -> int:
    """Peak memory of one run of `config` (a TrainConfig), in bytes."""
    item = np.dtype(config.dtype).itemsize
    sizes = [input_size, *config.hidden, num_classes]
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    weights = params * item * OPTIMIZER_COPIES.get(config.optimizer, 8.5)
    rows = max(config.batch_size, EVAL_CHUNK)
    activations = rows * sum(sizes) * item * ACTIVATION_COPIES
    history = config.steps * 7 * 8  # float64 columns, loss_sampling_var and trajectory too
    if config.noise_probe is not None:  # per chunk, the summed gradient at the dtype, and
        weights += params * (item + 16)  # two float64 accumulations of it (core/noise.py)
    probe = config.trajectory_probe
    if probe is not None:
        n = train_size if probe == "all" else int(probe)
        activations += n * input_size * item
        if n < train_size:  # its per-example losses at every measured step (trajectory.py)
            activations += n * 8 * (config.steps // 2 // config.trajectory_every + 60)
    return int(weights + activations + history + PROCESS_BYTES)


UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str) -> int:
    """'8G', '512M', '1.5T', '1000000' (bytes) -> bytes; ValueError for anything else."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 8G, 512M)")
    return int(float(m.group(1)) * UNITS[m.group(2).upper()])


def format_size(n: float) -> str:
    for unit in ("T", "G", "M", "K"):
        if n >= UNITS[unit]:
            return f"{n / UNITS[unit]:.1f} {unit}iB"
    return f"{n} B"
