"""Successive halving against the full grid, on this machine, for the same questions:
an lr_batch_grid-like grid (the best lr per batch size by test loss) and a
batch_scaling-like grid (the best lr per batch size by steps to a target, and B_crit).

Both ways train in this process with the core's train(): the full grid trains every run
to its end; halving trains every config to the first rung, and continues the best 1/eta
of each batch size from their in-memory checkpoints (train(start=state)) by the same rule
as the sweeper (report/halving.py). Training steps are counted as they are taken (an
observer), so a step trained twice would show. The target: halving trains <= 40% of the
full grid's steps and picks the same lr per batch size (or one inside the full grid
best's interval), and B_crit inside the full study's interval."""

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlpsweep.core import TrainConfig, train
from mlpsweep.core.observe import TrainObserver
from mlpsweep.records.halving import HalvingSpec
from mlpsweep.records.run import history_columns
from mlpsweep.report.halving import ranking, value_at
from mlpsweep.report.scaling import b_crit_of, best_per_batch, bootstrap, interval, steps_grids

TARGET_SHARE = 0.40
WIDTH = 64  # 784-64-64-10: both grids in minutes on a shared 2-core machine


class Counter(TrainObserver):
    """Counts the steps trained and keeps the last checkpoint."""

    def __init__(self):
        self.steps, self.state = 0, None

    def on_step(self, step, train_loss):
        self.steps += 1

    def on_checkpoint(self, state):
        self.state = state


@dataclass
class Grid:
    name: str
    configs: dict  # (batch_size, lr, seed) -> TrainConfig
    spec: HalvingSpec
    by: str  # how the pick is made: "metric" (the spec's, at the end) or "steps_to_target"


def grids(quick=False):
    seeds = range(2 if quick else 3)
    lr_batch = Grid(
        "lr_batch_grid-like (test loss at the end; 5 lr x 4 batch sizes x seeds; width 64)",
        {
            (b, lr, s): TrainConfig(
                lr=lr, batch_size=b, seed=s, steps=270 if quick else 810, eval_every=30
            )  # fmt: skip
            for b in (10, 30, 100, 300)
            for lr in (0.01, 0.03, 0.1, 0.3, 1.0)
            for s in seeds
        },
        HalvingSpec(metric="test_loss", min_steps=30, eta=3, within="batch_size"),
        "metric",
    )
    batches = (8, 32, 128, 512) if quick else (8, 16, 32, 64, 128, 256, 512)
    scaling = Grid(
        "batch_scaling-like (steps to test accuracy 0.85, stopped there; 4 lr x batch x "
        "seeds; width 64)",
        {
            (b, lr, s): TrainConfig(
                lr=lr,
                batch_size=b,
                seed=s,
                steps=810 if quick else 2430,
                eval_every=30,
                target="test_accuracy:0.85",
                stop_at_target=True,
            )  # fmt: skip
            for b in batches
            for lr in (0.03, 0.1, 0.3, 1.0)
            for s in seeds
        },
        HalvingSpec(metric="test_accuracy", min_steps=30, eta=3, within="batch_size"),
        "steps_to_target",
    )
    return [lr_batch, scaling]


def history(result):
    return pd.DataFrame(history_columns(result))


def full_grid(grid, dataset):
    counter, results = Counter(), {}
    t0 = time.perf_counter()
    for key, cfg in grid.configs.items():
        results[key] = train(cfg, dataset, observer=counter)
    return results, counter.steps, time.perf_counter() - t0


def halved(grid, dataset):
    """Successive halving over the grid, in memory (the sweeper's rule and rungs)."""
    spec, counter, results, states = grid.spec, Counter(), {}, {}
    steps = next(iter(grid.configs.values())).steps
    rungs = spec.rungs(steps)
    alive = list(grid.configs)
    t0 = time.perf_counter()
    for k, rung in enumerate(rungs):
        for key in alive:
            done = results.get(key)
            if done is not None and not done.paused:
                continue  # stopped at its target (or diverged): nothing more to train
            counter.state = None
            results[key] = train(grid.configs[key], dataset, observer=counter,
                                 start=states.get(key), stop_at=rung)  # fmt: skip
            states[key] = counter.state
        if k == len(rungs) - 1:
            break
        rows = []
        for key in alive:
            r = results[key]
            at_target = r.steps_to_target is not None and not r.paused
            value = value_at(history(r), spec.metric, rung, at_target)
            reached = r.steps_to_target if at_target else np.nan
            rows.append({"config": key[:2], "group": key[0], "value": value, "reached": reached})
        table = ranking(pd.DataFrame(rows), spec)
        keep = set(table.loc[table["promoted"], "config"])
        alive = [key for key in alive if key[:2] in keep]
    return results, counter.steps, time.perf_counter() - t0


def runs_table(results):
    return pd.DataFrame(
        [
            {
                "batch_size": b,
                "lr": lr,
                "seed": s,
                "steps_done": r.steps_done,
                "steps_to_target": r.steps_to_target,
                "test_loss": r.test_loss[-1] if len(r.test_loss) else np.nan,
                "paused": r.paused,
            }  # fmt: skip
            for (b, lr, s), r in results.items()
        ]
    )


def picks_by_metric(runs, spec):
    """{batch size: (lr, mean, halfwidth)} by the spec's metric at the end, over the runs
    trained to the end (the same rule as the page)."""
    done = runs[~runs["paused"]]
    values = done.rename(columns={spec.metric: "value"}).assign(
        config=done["lr"], group=done["batch_size"]
    )
    table = ranking(values[["config", "group", "value"]], spec)
    best = table[table["rank"] == 0]
    return {int(r.group): (r.config, r.mean, r.halfwidth) for r in best.itertuples()}, table


def picks_by_steps(runs):
    grids_ = steps_grids(runs)
    best = best_per_batch(grids_)
    return {b: (lr, s.mean(), None) for b, (lr, s) in best.items()}, grids_


def compare(grid, dataset, out=print):
    full, full_steps, full_s = full_grid(grid, dataset)
    half, half_steps, half_s = halved(grid, dataset)
    fr, hr = runs_table(full), runs_table(half)
    rungs = grid.spec.rungs(int(fr.steps_done.max()))
    out(f"\n{grid.name}: {len(grid.configs)} runs, rungs {rungs}")
    ok = True
    if grid.by == "metric":
        fp, ftable = picks_by_metric(fr, grid.spec)
        hp, _ = picks_by_metric(hr, grid.spec)
        out(f"  {'batch':>6} {'full grid: lr (test loss ± 95%)':>34} {'halving: lr':>12}  verdict")
        for b in sorted(fp):
            lr, mean, hw = fp[b]
            mine = hp.get(b, (None,))[0]
            row = ftable[(ftable["group"] == b) & (ftable["config"] == mine)]
            inside = len(row) and abs(float(row["mean"].iloc[0]) - mean) <= hw
            verdict = "same" if mine == lr else "within its interval" if inside else "NOT within"
            ok &= verdict != "NOT within"
            out(f"  {b:>6} {f'{lr:g} ({mean:.4f} ± {hw:.4f})':>34} {mine!s:>12}  {verdict}")
    else:
        fp, fgrids = picks_by_steps(fr)
        hp, _ = picks_by_steps(hr)
        out(f"  {'batch':>6} {'full grid: lr (steps)':>22} {'halving: lr (steps)':>22}  verdict")
        for b in sorted(fp):
            lr, steps, _ = fp[b]
            mine = hp.get(b)
            same = mine is not None and mine[0] == lr
            ok &= same
            theirs = f"{mine[0]:g} ({mine[1]:.0f})" if mine else "none reached"
            verdict = "same" if same else "DIFFERENT"
            out(f"  {b:>6} {f'{lr:g} ({steps:.0f})':>22} {theirs:>22}  {verdict}")
        fb = b_crit_of([(b, v[1]) for b, v in fp.items()])
        hb = b_crit_of([(b, v[1]) for b, v in hp.items()])
        lo, hi = interval(bootstrap({b: fgrids[b] for b in sorted(fp)}, np.random.default_rng(0)))
        inside = lo <= hb <= hi
        ok &= bool(inside)
        out(f"  B_crit: full grid {fb:.0f} (95% {lo:.0f} to {hi:.0f}); halving {hb:.0f}: "
            f"{'inside' if inside else 'OUTSIDE'} the full study's interval")  # fmt: skip
    share = half_steps / full_steps
    out(
        f"  training steps: full grid {full_steps:,}, halving {half_steps:,} ({share:.0%}); "
        f"wall time: full grid {full_s:.1f} s, halving {half_s:.1f} s ({half_s / full_s:.0%})"
    )
    return ok and share <= TARGET_SHARE, share


def run(dataset, quick=False, out=print):
    verdicts = [compare(g, dataset, out) for g in grids(quick)]
    met = all(ok for ok, _ in verdicts)
    worst = max(share for _, share in verdicts)
    out(
        f"\nhalving: at most {worst:.0%} of the full grid's training steps (target <= "
        f"{TARGET_SHARE:.0%}), the same picks: {'met' if met else 'MISSED'}"
    )
    return met
