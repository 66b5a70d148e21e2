"""Training-step benchmark: our step next to its ceiling and a naive listing-style step.

All variants are timed in one process with one BLAS thread, interleaved round by round,
in CPU time, and the best round of each is kept, so the printed ratios are fair on a
noisy machine.
"""

import math
import os
import subprocess
import sys
import time
from functools import partial

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from mlpsweep.core.config import TrainConfig
from mlpsweep.core.train import Trainer
from mlpsweep.provenance import blas_library, cpu_model

SHAPES = (784, 200, 200, 10)
TARGETS = {  # (batch, dtype) -> (against, minimum ratio)
    (100, "float32"): ("ceiling", 0.9),
    (10, "float32"): ("ceiling", 0.7),
    (10, "float64"): ("naive", 1.3),
    (100, "float64"): ("naive", 1.3),
}


def ceiling_step(batch, dtype, rng):
    """The step's eight matrix products alone (3 forward; dW3, dH2, dW2, dH1, dW1),
    same shapes and dtype, outputs preallocated: what a step cannot beat."""
    d = [np.ascontiguousarray(rng.standard_normal((batch, n)), dtype) for n in SHAPES]
    W = [np.ascontiguousarray(rng.standard_normal(s), dtype) for s in zip(SHAPES[:-1], SHAPES[1:])]
    dW = [np.empty_like(w) for w in W]
    out = [np.empty((batch, n), dtype) for n in SHAPES]

    def step():
        for k in range(3):
            np.matmul(d[k], W[k], out=out[k + 1])
        for k in (2, 1, 0):
            np.matmul(d[k].T, d[k + 1], out=dW[k])
            if k > 0:
                np.matmul(d[k + 1], W[k].T, out=out[k])

    return step


def naive_step(dataset, batch, rng):
    """One step as the seed listing writes it: float64 weights, a float32 normalised
    train set, one-hot labels, fresh arrays everywhere and the input's gradient too."""
    x_all = dataset.x_train.astype(np.float32) / 255.0
    t_all = np.eye(10)[dataset.y_train]
    W = [0.01 * rng.standard_normal(s) for s in zip(SHAPES[:-1], SHAPES[1:])]
    b = [np.zeros(n) for n in SHAPES[1:]]
    n = len(t_all)

    def step():
        mask = rng.choice(n, batch)
        x, t = x_all[mask], t_all[mask]
        acts, masks = [x], []
        for k in range(3):
            a = np.dot(acts[-1], W[k]) + b[k]
            if k < 2:
                masks.append(a <= 0)
                a = np.maximum(0, a)
            acts.append(a)
        e = np.exp(acts[-1] - np.max(acts[-1], axis=1, keepdims=True))
        y = e / np.sum(e, axis=1, keepdims=True)
        -np.sum(t * np.log(y + 1e-7)) / batch
        dout = y - t
        for k in (2, 1, 0):
            dW, db = np.dot(acts[k].T, dout), np.sum(dout, axis=0)
            dout = np.dot(dout, W[k].T)
            if k > 0:
                dout[masks[k - 1]] = 0
            W[k] -= 0.01 * dW
            b[k] -= 0.01 * db

    return step


def our_step(dataset, batch, dtype, fused=None):
    """The real training step (Trainer.step, as train() runs it; `fused=False` forces the
    layer path). The default settings (He init, lr 0.1, mean reduction) keep the numbers
    finite however long it runs: a diverged step skips its backward pass and would
    flatter the figures."""
    config = TrainConfig(batch_size=batch, dtype=dtype, steps=10**9)
    trainer = Trainer(config, dataset, fused=fused)

    def step():
        if not math.isfinite(trainer.step()):
            raise RuntimeError("benchmark run diverged: its timings would be meaningless")

    step.fused = trainer.fused is not None
    return step


def best_rate(fns, steps, rounds, clock=time.process_time):
    """steps/s of each function: best of `rounds` interleaved rounds of `steps` calls.
    Timed in this process's CPU time: with one BLAS thread that is wall time on an idle
    machine, and on a shared one it leaves out the time other processes hold the core."""
    best = [0.0] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t0 = clock()
            for _ in range(steps):
                fn()
            best[i] = max(best[i], steps / max(clock() - t0, 1e-9))
    return best


# The breakdown's columns: a stage kind of FusedReluSGD.stages (or the batch) -> heading.
KINDS = {
    "batch": "batch",
    "products": "products",
    "ReLU masks and outputs": "ReLU",
    "softmax, loss, its variance": "loss",
    "ReLU backward (mask)": "ReLU'",
    "update pass": "update",
}


def breakdown(dataset, batch, dtype, rounds, seconds_per_round, rng):
    """Where one fused step's time goes, in microseconds per step: its matrix products
    (all of them, in order, as the ceiling runs its own: they evict each other from the
    caches), each kind of elementwise stage (FusedReluSGD.stages, plus drawing and
    loading the batch: each stage timed alone, its inputs just written, as in the
    step), and the rest: the Python between the calls, and caches a stage timed alone
    finds warm. Interleaved with the whole step and the ceiling, best of `rounds`.
    "call": what one numpy call costs that does next to nothing (one element)."""
    trainer = Trainer(TrainConfig(batch_size=batch, dtype=dtype, steps=10**9), dataset)
    loader, sampler = trainer.loader, trainer.sampler
    x, y = loader.load(sampler.next())
    stages = [("batch", lambda: loader.load(sampler.next()))] + trainer.fused.stages(x, y)
    products = [fn for kind, fn in stages if kind == "products"]
    others = [(KINDS[kind], fn) for kind, fn in stages if kind != "products"]

    def all_products():
        for fn in products:
            fn()

    one = np.ones(1, dtype)
    timed = [trainer.step, ceiling_step(batch, dtype, rng), partial(np.add, one, one, out=one)]
    timed += [all_products] + [fn for _, fn in others]
    start = trainer.net.flat_params.copy()
    steps = max(5, int(best_rate(timed[:1], 20, 1)[0] * seconds_per_round))
    best = [0.0] * len(timed)
    for _ in range(rounds):
        # Each round from the same weights, through one pass of the stages in order: a
        # stage repeated alone drifts its own state (harmlessly, for a while).
        trainer.net.flat_params[...] = start
        for _, fn in stages:
            fn()
        best = [max(b, r) for b, r in zip(best, best_rate(timed, steps, 1))]
    us = [1e6 / rate for rate in best]
    kinds = {"products": us[3]}
    for (kind, _), t in zip(others, us[4:]):
        kinds[kind] = kinds.get(kind, 0.0) + t
    return {
        "step": us[0],
        "ceiling": us[1],
        "call": us[2],
        **kinds,
        "rest": us[0] - sum(kinds.values()),
        "in_gemm": trainer.fused.in_gemm,
    }


COLUMNS = ("batch", "ReLU", "loss", "ReLU'", "update", "rest")


def print_breakdown(parts, rounds, out=print):
    out(f"where the float32 step's time goes, µs per step (best of {rounds} interleaved rounds):")
    out(
        f"{'batch':>5} {'step':>8} {'products':>9} {'ceiling':>8} "
        + " ".join(f"{c:>7}" for c in COLUMNS)
    )
    for batch, p in parts.items():
        out(
            f"{batch:>5} {p['step']:>8.1f} {p['products']:>9.1f} {p['ceiling']:>8.1f} "
            + " ".join(f"{p[c]:>7.1f}" if c in p else f"{'-':>7}" for c in COLUMNS)
        )
    gemm = all(p["in_gemm"] for p in parts.values())
    call = min(p["call"] for p in parts.values())
    out(
        "products: the step's matrix products in order, "
        + (
            "three of them writing the updated weights (gemm, core/blas.py)"
            if gemm
            else "the gradients then subtracted by the update pass"
        )
        + ", every bias inside its product, beside the ceiling's eight; batch: draw and "
        "gather (from the train set normalised once, core/batches.py); ReLU: masks and "
        "outputs; loss: softmax, cross-entropy and its per-example variance; ReLU': the "
        "backward masks; update: the pass over every weight"
        + (" (none: the products do it)" if gemm else "")
        + "; rest: the Python between the calls and colder caches than a stage "
        f"timed alone finds (one numpy call doing nothing: {call:.2f} µs)"
    )


def run(dataset, rounds=7, seconds_per_round=0.25, out=print):
    rng = np.random.default_rng(0)
    rows = []
    with threadpool_limits(limits=1), np.errstate(all="ignore"):
        threads = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        out(
            f"training step, {'-'.join(map(str, SHAPES))} MLP, {blas_library()}, "
            f"{max(threads, default='?')} thread, {cpu_model()}; "
            f"best of {rounds} interleaved rounds, CPU time"
        )
        out(
            f"{'batch':>5} {'dtype':>8} {'step/s':>9} {'ceiling/s':>10} {'naive/s':>9} "
            f"{'step/ceiling':>13} {'step/naive':>11}  {'target':<28} {'layers/s':>9}"
        )
        for batch in (10, 100):
            for dtype in ("float32", "float64"):
                ours = our_step(dataset, batch, dtype)
                fns = [ours, ceiling_step(batch, dtype, rng), naive_step(dataset, batch, rng)]
                if ours.fused:  # the layer path too, to show what the fused step buys
                    fns.append(our_step(dataset, batch, dtype, fused=False))
                probe = best_rate(fns[:1], 20, 1)[0]
                steps = max(5, int(probe * seconds_per_round))
                rates = best_rate(fns, steps, rounds)
                step, ceiling, naive = rates[:3]
                layers = rates[3] if ours.fused else step
                against, minimum = TARGETS[(batch, dtype)]
                ratio = step / (ceiling if against == "ceiling" else naive)
                verdict = "met" if ratio >= minimum else "MISSED"
                target = f">= {minimum}x {against}: {verdict}"
                out(
                    f"{batch:>5} {dtype:>8} {step:>9.0f} {ceiling:>10.0f} {naive:>9.0f} "
                    f"{step / ceiling:>13.2f} {step / naive:>11.2f}  {target:<28} {layers:>9.0f}"
                )
                rows.append(
                    {
                        "batch": batch,
                        "dtype": dtype,
                        "step": step,
                        "ceiling": ceiling,
                        "naive": naive,
                        "layers": layers,
                        "fused": ours.fused,
                        "ratio": ratio,
                        "met": ratio >= minimum,
                    }
                )
        out(
            "step: what train() runs (float32: the fused step); layers/s: the layer path, "
            "whose rounding replays the listing"
        )
        parts = {
            batch: breakdown(dataset, batch, "float32", rounds, seconds_per_round, rng)
            for batch in (10, 100)
        }
        print_breakdown(parts, rounds, out)
    for row in rows:
        row["breakdown"] = parts.get(row["batch"]) if row["dtype"] == "float32" else None
    return rows


def other_kernels(names):
    """Those of the OpenBLAS kernels `names` (OPENBLAS_CORETYPE values) that are not the
    one this process loaded; none when numpy's BLAS is not OpenBLAS."""
    loaded = blas_library()
    if not loaded.startswith("openblas"):
        return []
    kernel = loaded.rsplit("(", 1)[-1].rstrip(")").lower()
    return [name for name in names if name.lower() != kernel]


def under_kernel(kernel, rounds, strict, out=print, timeout=1800):
    """`mlpsweep bench train` once more in a process of its own under the OpenBLAS kernel
    `kernel` (it is chosen when the library loads): its output through `out`, and
    whether its targets were met (with `strict`; otherwise whether it ran)."""
    env = dict(os.environ, OPENBLAS_CORETYPE=kernel)
    args = ["-m", "mlpsweep.bench", "train", "--rounds", str(rounds), "--also-kernels"]
    p = subprocess.run(
        [sys.executable, *args, *(["--strict"] if strict else [])],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    for line in p.stdout.splitlines():
        out(line)
    if p.returncode not in (0, 1):
        out(f"(the run under {kernel} failed: {p.stderr.strip().splitlines()[-1:]})")
    return p.returncode == 0
