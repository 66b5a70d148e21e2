"""What the probes cost a run: the gradient-noise scale (`noise_probe`, the default run:
1000 steps, an evaluation every 100) and the trajectory loss (`trajectory_probe`), each
with and without, interleaved, best of N rounds."""

import time

from mlpsweep.core import TrainConfig, train
from mlpsweep.core.window import trajectory_steps


def best_times(configs, dataset, rounds):
    """{name: the best of `rounds` wall times of training it}, the configs interleaved
    (a machine's slow phase then costs every config alike)."""
    best = dict.fromkeys(configs, float("inf"))
    for _ in range(rounds):
        for name, cfg in configs.items():
            t0 = time.perf_counter()
            train(cfg, dataset)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def run(dataset, probes=(1024, "all"), rounds=3, out=print):
    base = TrainConfig()
    configs = {"off": base, **{str(p): base.replace(noise_probe=p) for p in probes}}
    best = best_times(configs, dataset, rounds)
    out(
        f"noise_probe cost, default run ({base.steps} steps, {base.steps // base.eval_every + 1}"
        f" measurements), {dataset.name} ({len(dataset.y_train)} train), best of {rounds}"
    )
    for name, seconds in best.items():
        extra = "" if name == "off" else f"  (+{seconds / best['off'] - 1:.0%})"
        out(f"  noise_probe={name:5} {seconds:6.2f} s{extra}")
    return best


def trajectory(dataset, probes=(500, 1000, 2000, "all"), rounds=3, out=print):
    """What the trajectory probe costs: batch_oscillation's batch-10 run (float64, 1000
    steps; the probe itself computes in float32) with and without it, interleaved, best
    of N; per measured step, and against the run's own training step."""
    base = TrainConfig(dtype="float64", init=0.01, loss_eps=1e-7, batch_size=10, lr=0.1)
    configs = {"off": base, **{str(p): base.replace(trajectory_probe=p) for p in probes}}
    best = best_times(configs, dataset, rounds)
    measured = len(trajectory_steps(base.steps))
    step = best["off"] / base.steps
    out(
        f"trajectory_probe cost, batch_oscillation's batch-10 run ({base.steps} steps, "
        f"{measured} measured: the last half and half a smoothing window), best of {rounds}"
    )
    for name, seconds in best.items():
        if name == "off":
            out(f"  trajectory_probe=off   {seconds:6.2f} s")
            continue
        per = (seconds - best["off"]) / measured
        out(
            f"  trajectory_probe={name:4} {seconds:6.2f} s  (+{seconds / best['off'] - 1:.0%}; "
            f"{per * 1e3:.2f} ms per measured step = {per / step:.1f} training steps)"
        )
    return best
