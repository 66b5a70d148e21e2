"""What matters, against seed noise: the share of a metric's variance that each swept knob,
each two-knob interaction and the seeds explain, over a factorial grid with seeds.

    y = mean + sum of knob effects + sum of two-knob interactions (+ higher ones) + seed noise

The ANOVA table (sums of squares, type II: each term after every term that does not
contain it, the standard for unbalanced designs under marginality) is statsmodels'
(OLS + anova_lm); the seed noise is the within-config residual (the cell-means model's),
and every term's F test is against it. A term's share is omega squared,
(SS - df * MS_seed) / (SS_total + MS_seed): the fixed-effects estimate of its variance
component over the total, nearly unbiased where eta squared (SS / SS_total) is biased
upward in small designs; the seeds' share N * MS_seed / (SS_total + MS_seed) completes them
to one. Positive metrics are analysed on logs (as the report's geometric means).

Intervals: a bootstrap over seeds, resampled jointly across configs (one draw of seeds
serves every config; scipy.stats.bootstrap draws them), of modified residuals (`adjusted`),
read as the expanded percentile interval (`interval`): with a handful of seeds, the plain
percentile interval is too narrow (its 95% covered the true share 85-87% of the time over
planted sweeps of 8 seeds; the expanded one 89-97%, tests/test_importance.py). A seed is the same
initial weights in every config of one network shape and the same sampling stream in all,
so configs are correlated through their seeds; resampling seeds jointly keeps that
correlation. Where shapes differ (depth, width) the same seed draws other weights, the
configs' seeds are independent there, and the joint draw is simply a valid resampling of
independent seeds. Each resample is a weighted refit (weight = how often its seed was
drawn), computed for all resamples at once (`type2`); at unit weights it is the same table
as statsmodels' (tests/test_importance.py).
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlpsweep.report.anova import (
    HIGHER,
    SEEDS,
    adjusted,
    interval,
    library_table,
    omega_squared,
    type2,
)

__all__ = ["HIGHER", "SEEDS", "Importance", "WhatMatters", "library_table", "shares", "type2"]

ALPHA = 0.05  # a term whose F test against seed noise has p >= ALPHA is within seed noise
N_BOOT = 1000
SHAPE_KNOBS = ("depth", "width", "hidden_sizes")  # the same seed draws other weights across them


@dataclass
class Importance:
    """One metric's variance shares: `table` has a row per term (knobs, interactions,
    higher-order interactions, seeds), largest share first, with its df, sum of squares,
    F and p against seed noise, share (omega squared), its interval and `within_noise`."""

    metric: str
    label: str  # "log final train loss"
    table: pd.DataFrame
    runs: int
    seeds: int
    configs: int
    balanced: bool
    left_out: int = 0  # finished runs with no (finite, positive for a log) value

    def share(self, term):
        return self.table.set_index("term").loc[term, "share"]

    def sentence(self, max_terms=5):
        """'lr explains 71% [64, 77] of the variance of log final train loss; batch_size
        9% [5, 14]; their interaction 6% [2, 9]; seeds 4% [3, 6]; depth is within seed
        noise.'"""
        t = self.table
        clear = t[(t["term"] != SEEDS) & ~t["within_noise"]]
        noise = t[(t["term"] != SEEDS) & t["within_noise"]]
        seeds = t[t["term"] == SEEDS].iloc[0]
        parts = []
        for k, (_, r) in enumerate(clear.head(max_terms).iterrows()):
            name = self._name(r["term"])
            what = (
                f" explains {_pct(r)} of the variance of {self.label}" if k == 0 else f" {_pct(r)}"
            )
            parts.append(name + what)
        if len(clear) > max_terms:
            parts.append(
                f"{len(clear) - max_terms} more terms, "
                f"each under {_p(clear['share'].iloc[max_terms])}"
            )
        seeds_part = f"seeds {_pct(seeds)}"
        if not parts:
            seeds_part = f"seeds explain {_pct(seeds)} of the variance of {self.label}"
        parts.append(seeds_part)
        if len(noise):
            names = [self._name(n) for n in noise["term"]]
            verb = "is" if len(names) == 1 else "are"
            parts.append(f"{_and(names)} {verb} within seed noise")
        if not np.isfinite(seeds["share_lo"]):  # 2 seeds: one distinct resample with both
            parts.append("no intervals: too few seeds to resample (3 or more give them)")
        return "; ".join(parts) + "."

    def _name(self, term):
        knobs = [k for k in self.table["term"] if " × " not in k and k not in (SEEDS, HIGHER)]
        if " × " in term and len(knobs) == 2:
            return "their interaction"
        return term


@dataclass
class WhatMatters:
    """The variance shares of every metric (the primary first), or why there are none."""

    metrics: list = field(default_factory=list)  # Importance, one per metric
    reason: str = ""  # why no shares: not a grid, one seed, a search ...
    note: str = ""  # how the seeds were resampled

    def __bool__(self):
        return bool(self.metrics)

    def of(self, metric):
        return next((m for m in self.metrics if m.metric == metric), None)

    def csv(self) -> pd.DataFrame:
        frames = [m.table.assign(metric=m.metric, scale=m.label) for m in self.metrics]
        if not frames:
            return pd.DataFrame(columns=["metric", "scale", *COLUMNS])
        return pd.concat(frames, ignore_index=True)[["metric", "scale", *COLUMNS]]


COLUMNS = ["term", "df", "sum_sq", "F", "p", "share", "share_lo", "share_hi", "within_noise"]


def _p(v):
    v = 100 * min(max(float(v), 0.0), 1.0)  # an estimate past 0 or 1 is shown at it
    return f"{v:.0f}%" if v >= 1 or v == 0 else f"{v:.1f}%"


def _pct(row):
    lo, hi = (100 * min(max(float(row[k]), 0.0), 1.0) for k in ("share_lo", "share_hi"))
    if not np.isfinite([lo, hi]).all():
        return _p(row["share"])
    digits = 0 if hi >= 1 else 1
    return f"{_p(row['share'])} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _and(names):
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def shares(frame, dims, n_boot=N_BOOT, seed=0, method="expanded"):
    """The variance-shares table of frame ("y", "seed" and the knobs `dims`): a row per
    term, largest share first (seeds among them)."""
    from scipy import stats

    frame = frame.sort_values([*dims, "seed"], key=lambda s: s.astype(str)).reset_index(drop=True)
    anova, total, n = library_table(frame, dims)
    point = omega_squared(anova, total, n)
    names = list(point)
    seeds = np.unique(frame["seed"].to_numpy())
    drawn_frame = frame.assign(y=adjusted(frame, dims))

    def statistic(drawn, axis=-1):
        lead = drawn.shape[:-1]
        drawn = drawn.reshape(-1, drawn.shape[-1])
        counts = (drawn[:, :, None] == np.arange(len(seeds))).sum(axis=1)
        got = omega_squared(*type2(drawn_frame, dims, counts))
        got = np.stack([got[t] for t in names])
        # One seed drawn every time leaves no seed noise: no share, left out (NaN).
        got[:, (counts > 0).sum(axis=1) < 2] = np.nan
        return got.reshape(len(names), *lead)

    lo = hi = np.full(len(names), np.nan)
    if len(seeds) >= 3 and n_boot:
        with warnings.catch_warnings():  # a degenerate resample (one seed drawn S times)
            warnings.simplefilter("ignore")
            drawn = stats.bootstrap(
                (np.arange(len(seeds)),),
                statistic,
                n_resamples=n_boot,
                vectorized=True,
                method="percentile",
                batch=max(1, 200_000 // max(len(frame), 1)),
                rng=np.random.default_rng(seed),
            ).bootstrap_distribution
        lo, hi = interval(np.array([point[t] for t in names]), drawn, method, len(seeds))
    df_w, ss_w = anova[SEEDS]
    ms_w = ss_w / df_w
    rows = []
    for k, t in enumerate(names):
        df, ss = anova[t]
        f = (ss / df) / ms_w if t != SEEDS and df > 0 and ms_w > 0 else np.nan
        p = float(stats.f.sf(f, df, df_w)) if f == f else np.nan
        rows.append(
            {
                "term": t,
                "df": df,
                "sum_sq": ss,
                "F": f,
                "p": p,
                "share": point[t],
                "share_lo": lo[k],
                "share_hi": hi[k],
                "within_noise": t != SEEDS and not (p < ALPHA),
            }
        )
    table = pd.DataFrame(rows)
    return table.sort_values("share", ascending=False, kind="stable").reset_index(drop=True)


# -- a sweep's ----------------------------------------------------------------------------


def what_matters(analysis, study=None, manifest=None, n_boot=N_BOOT) -> WhatMatters:
    """The variance shares of every result metric of a grid sweep with seeds (the study's
    metrics first), or a WhatMatters whose `reason` says why there are none."""
    from mlpsweep.report.metrics import DIFFERENCE, METRICS, SUMMARY

    dims = list(analysis.dims)
    if manifest is not None and manifest.adaptive:
        return WhatMatters(
            reason=(
                f"The runs were proposed by a search ({manifest.sweeper}), not laid out on a "
                "grid: the design is not factorial, so no variance shares are drawn."
            )
        )
    if not dims:
        return WhatMatters(reason="Nothing was swept but the seed: no knob to share the variance.")
    runs = analysis.runs
    levels = [runs[d].astype(str).nunique() for d in dims]
    present = runs[dims].astype(str).drop_duplicates().shape[0]
    if present < int(np.prod(levels)):
        return WhatMatters(
            reason=(
                f"{', '.join(dims)} were not run as a full grid ({present} of "
                f"{int(np.prod(levels))} "
                "combinations): the design is not factorial, so no variance shares are drawn."
            )
        )
    done = analysis.finished
    if "seed" not in done or done.groupby("config")["seed"].nunique().max() < 2:
        return WhatMatters(
            reason=(
                "One seed per config: no seed noise to measure the knobs against "
                "(run at least two seeds, e.g. seed=range(4), for variance shares)."
            )
        )
    order = [*(study.metrics if study is not None else ()), *SUMMARY]
    out = []
    for metric in dict.fromkeys(order):
        if metric not in done or metric not in METRICS:
            continue
        y = pd.to_numeric(done[metric], errors="coerce").astype(float)
        ok = np.isfinite(y)
        log = metric not in DIFFERENCE and bool((y[ok] > 0).all()) and ok.any()
        frame = done.loc[ok, [*dims, "seed"]].assign(y=np.log(y[ok]) if log else y[ok])
        per_config = frame.groupby(dims)["seed"].nunique()
        if len(frame) < 4 or per_config.max() < 2 or not frame["y"].std() > 0:
            continue
        if len(per_config) < int(np.prod(levels)) and len(frame) - len(per_config) < 2:
            continue
        if any(frame[d].astype(str).nunique() < 2 for d in dims):
            continue  # measured at one level of a knob only (e.g. equal-examples windows)
        try:
            table = shares(frame, dims, n_boot=n_boot)
        except (ValueError, np.linalg.LinAlgError):  # a design the model cannot be fit on
            continue
        label = ("log " if log else "") + METRICS[metric][0]
        counts = per_config.to_numpy()
        out.append(
            Importance(
                metric,
                label,
                table,
                len(frame),
                int(frame["seed"].nunique()),
                len(per_config),
                bool((counts == counts[0]).all() and len(per_config) == int(np.prod(levels))),
                int((~ok).sum()),
            )
        )
    if not out:
        return WhatMatters(reason="No metric has values in at least two seeds of a config.")
    shape = [d for d in dims if d in SHAPE_KNOBS]
    note = (
        "Intervals: 95%, a bootstrap that resamples seeds jointly across configs (a seed "
        "is the same initial weights in every config of one network shape and the same "
        "sampling stream in every config)."
    )
    if shape:
        note += (
            f" Across {' and '.join(shape)} the shape differs, so a seed draws other initial "
            "weights there: those configs' seeds are independent, and the joint draw resamples "
            "them as such."
        )
    return WhatMatters(
        out,
        note=note + " Share: omega squared; a term is within seed noise "
        f"when its F test against the seeds has p >= {ALPHA:g}.",
    )
