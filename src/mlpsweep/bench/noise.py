"""What measuring the gradient-noise scale costs a run: the default run (1000 steps,
an evaluation every 100) with and without `noise_probe`, interleaved, best of N rounds."""

import time

from mlpsweep.core import TrainConfig, train


def run(dataset, probes=(1024, "all"), rounds=3, out=print):
    base = TrainConfig()
    configs = {"off": base, **{str(p): base.replace(noise_probe=p) for p in probes}}
    best = dict.fromkeys(configs, float("inf"))
    for _ in range(rounds):
        for name, cfg in configs.items():
            t0 = time.perf_counter()
            train(cfg, dataset)
            best[name] = min(best[name], time.perf_counter() - t0)
    out(
        f"noise_probe cost, default run ({base.steps} steps, {base.steps // base.eval_every + 1}"
        f" measurements), {dataset.name} ({len(dataset.y_train)} train), best of {rounds}"
    )
    for name, seconds in best.items():
        extra = "" if name == "off" else f"  (+{seconds / best['off'] - 1:.0%})"
        out(f"  noise_probe={name:5} {seconds:6.2f} s{extra}")
    return best
