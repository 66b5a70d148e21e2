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

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

ALPHA = 0.05  # a term whose F test against seed noise has p >= ALPHA is within seed noise
N_BOOT = 1000
LEVEL = 0.95
SEEDS = "seeds"
HIGHER = "higher-order interactions"
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


# -- the design -------------------------------------------------------------------------


def terms_of(dims):
    """The model's terms: each knob, each pair of knobs (tuples of knob names)."""
    return [(d,) for d in dims] + list(itertools.combinations(dims, 2))


def term_name(term):
    return " × ".join(term)


def design_columns(frame, dims):
    """{term: its columns} (treatment-coded dummies; a pair's are the products of its
    knobs'), with the cell-means model's under None."""
    mains = {}
    for d in dims:
        codes, levels = pd.factorize(frame[d].astype(str), sort=True)
        mains[d] = (codes[:, None] == np.arange(1, len(levels))[None, :]).astype(float)
    out = {(d,): mains[d] for d in dims}
    for a, b in itertools.combinations(dims, 2):
        out[(a, b)] = (mains[a][:, :, None] * mains[b][:, None, :]).reshape(len(frame), -1)
    cells, levels = pd.factorize(frame[list(dims)].astype(str).agg("\x1f".join, axis=1))
    out[None] = (cells[:, None] == np.arange(1, len(levels))[None, :]).astype(float)
    return out


def _matrix(columns, terms):
    n = len(next(iter(columns.values())))
    return np.hstack([np.ones((n, 1)), *(columns[t] for t in terms)])


def _by_seed(values, position, n_seeds):
    """Sums of `values` (runs x k) over each seed's runs: seeds x k."""
    out = np.zeros((n_seeds, values.shape[1]))
    np.add.at(out, position, values)
    return out


def _rss(X, y, position, counts):
    """Residual sums of squares of y on X, one per resample (a row of `counts`: how often
    each seed was drawn). A resample's X'WX is the count-weighted sum of each seed's own
    X'X, so every resample costs a p x p solve, whatever the number of runs."""
    p = X.shape[1]
    per_seed = np.hstack(
        [(X[:, :, None] * X[:, None, :]).reshape(len(X), p * p), X * y[:, None], (y * y)[:, None]]
    )
    sums = counts @ _by_seed(per_seed, position, counts.shape[1])
    gram, rhs, yy = sums[:, : p * p].reshape(-1, p, p), sums[:, p * p : -1], sums[:, -1]
    beta = np.einsum("bpq,bq->bp", np.linalg.pinv(gram, rcond=1e-10, hermitian=True), rhs)
    return yy - (beta * rhs).sum(axis=1)


def _cells_rss(cells, y, position, counts):
    """The within-config residual sum of squares per resample, and the configs' count."""
    n_cells = cells.max() + 1
    onehot = np.eye(n_cells)[cells]
    sums = [
        counts @ _by_seed(onehot * v[:, None], position, counts.shape[1])
        for v in (np.ones_like(y), y, y * y)
    ]
    n, s1, s2 = sums
    with np.errstate(invalid="ignore", divide="ignore"):
        rss = np.where(n > 0, s2 - s1 * s1 / np.where(n > 0, n, 1), 0.0).sum(axis=1)
    return rss, n_cells


def type2(frame, dims, counts=None, balanced=True):
    """The type II ANOVA of frame["y"] on the knobs `dims` and their pairs with the seeds'
    within-config residual, under the resamples `counts` (resamples x seeds: how often each
    of frame's seeds, in sorted order, was drawn; None: the data as they are):
    ({term name: (df, SS per resample)}, SS_total, N per resample). Interactions of three
    knobs or more are one term. A complete grid (every config has every seed) takes the
    balanced path (`_balanced`), the same numbers at a fraction of the cost."""
    seeds, position = np.unique(frame["seed"].to_numpy(), return_inverse=True)
    counts = np.ones((1, len(seeds))) if counts is None else np.asarray(counts, float)
    y = frame["y"].to_numpy(float)
    y = y - y.mean()  # the intercept absorbs it; the sums of squares lose less precision
    codes = [pd.factorize(frame[d].astype(str), sort=True)[0] for d in dims]
    shape = tuple(int(c.max()) + 1 for c in codes)
    if balanced and len(frame) == np.prod(shape) * len(seeds):
        grid = np.full((*shape, len(seeds)), np.nan)
        grid[(*codes, position)] = y
        if not np.isnan(grid).any():
            return _balanced(grid, counts, dims)
    columns = design_columns(frame, dims)
    terms = terms_of(dims)
    models, ranks = {}, {}

    def fit(ts):
        key = tuple(sorted(ts, key=str))
        if key not in models:
            X = _matrix(columns, ts)
            models[key] = _rss(X, y, position, counts)
            ranks[key] = np.linalg.matrix_rank(X)
        return key

    out = {}
    for t in terms:
        base = tuple(u for u in terms if not set(t) <= set(u))
        b, full = fit(base), fit((*base, t))
        out[term_name(t)] = (ranks[full] - ranks[b], models[b] - models[full])
    whole = fit(tuple(terms))
    cells = pd.factorize(frame[list(dims)].astype(str).agg("\x1f".join, axis=1))[0]
    within, n_cells = _cells_rss(cells, y, position, counts)
    higher = n_cells - ranks[whole]
    if higher > 0:
        out[HIGHER] = (higher, models[whole] - within)
    n = counts @ np.bincount(position, minlength=len(seeds)).astype(float)
    s1 = counts @ _by_seed(y[:, None], position, len(seeds))[:, 0]
    s2 = counts @ _by_seed((y * y)[:, None], position, len(seeds))[:, 0]
    out[SEEDS] = (n - n_cells, within)
    return out, s2 - s1 * s1 / n, n


def _balanced(grid, counts, dims):
    """type2 on a complete grid (knobs x ... x seeds): a resample weights every config's
    seeds alike, so the design stays balanced and each term's sum of squares is its
    effect's, from the configs' weighted means (inclusion-exclusion over the knobs' axes)."""
    k = len(dims)
    per_config = counts.sum(axis=1)
    means = np.tensordot(counts / per_config[:, None], grid, axes=([1], [k]))  # resamples x knobs
    spread = (grid[None] - means[..., None]) ** 2 * counts.reshape(len(counts), *[1] * k, -1)
    within = spread.reshape(len(counts), -1).sum(axis=1)
    levels, cells, axes = grid.shape[:-1], int(np.prod(grid.shape[:-1])), tuple(range(1, k + 1))

    def marginal(*keep):
        drop = tuple(a for a in axes if a - 1 not in keep)
        return means.mean(axis=drop, keepdims=True) if drop else means

    def ss(effect):
        return per_config * cells * (effect**2).mean(axis=axes)

    grand = marginal()
    out = {d: (levels[i] - 1, ss(marginal(i) - grand)) for i, d in enumerate(dims)}
    for a, b in itertools.combinations(range(k), 2):
        effect = marginal(a, b) - marginal(a) - marginal(b) + grand
        out[term_name((dims[a], dims[b]))] = ((levels[a] - 1) * (levels[b] - 1), ss(effect))
    between = ss(means - grand)
    df_terms = sum(df for df, _ in out.values())
    if cells - 1 - df_terms > 0:
        out[HIGHER] = (cells - 1 - df_terms, between - sum(v for _, v in out.values()))
    n = per_config * cells
    out[SEEDS] = (n - cells, within)
    return out, between + within, n


def omega_squared(anova, total, n):
    """{term: omega squared}, the seeds' share completing them (see the module doc)."""
    df_w, ss_w = anova[SEEDS]
    ms_w = ss_w / df_w
    denom = total + ms_w
    out = {t: (ss - df * ms_w) / denom for t, (df, ss) in anova.items() if t != SEEDS}
    out[SEEDS] = n * ms_w / denom
    return out


# -- the library's table, and the bootstrap ----------------------------------------------


def adjusted(frame, dims):
    """Each run's value as its config's mean plus its seed's deviation from it scaled by
    sqrt(n / (n - 1)) (n: the config's seeds): the modified residuals of a resampling
    bootstrap (Davison & Hinkley 1997, 6.2.3). A resample of plain deviations has on average
    (n - 1) / n of their variance; these have all of it, so the seed noise and the config
    means vary across resamples as much as across repeated sweeps."""
    y = frame["y"].to_numpy(float)
    cells = (
        frame[list(dims)].astype(str).agg("\x1f".join, axis=1)
        if dims
        else pd.Series(0, index=frame.index)
    )
    group = frame.groupby(cells.to_numpy())["y"]
    mean, n = group.transform("mean").to_numpy(float), group.transform("size").to_numpy(float)
    scale = np.sqrt(np.divide(n, n - 1, out=np.zeros_like(n), where=n > 1))
    return mean + scale * (y - mean)


def library_table(frame, dims):
    """statsmodels' type II ANOVA (OLS + anova_lm) of the knobs and their pairs, and the
    cell-means model's residual (the seeds): {term name: (df, SS)}, SS_total, N."""
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    alias = {d: f"k{i}" for i, d in enumerate(dims)}
    data = frame[list(dims)].astype(str).rename(columns=alias)
    data["y"] = frame["y"].to_numpy(float)
    data["cell"] = data[list(alias.values())].agg("\x1f".join, axis=1)
    formula = " + ".join(
        f"C({alias[t[0]]})" if len(t) == 1 else f"C({alias[t[0]]}):C({alias[t[1]]})"
        for t in terms_of(dims)
    )
    fit = ols(f"y ~ {formula}", data).fit()
    table = anova_lm(fit, typ=2)
    out = {}
    for t in terms_of(dims):
        row = f"C({alias[t[0]]})" if len(t) == 1 else f"C({alias[t[0]]}):C({alias[t[1]]})"
        out[term_name(t)] = (float(table.loc[row, "df"]), float(table.loc[row, "sum_sq"]))
    import statsmodels.api as sm

    codes = pd.factorize(data["cell"])[0]  # the cell-means model, without a formula's cost
    cells = sm.OLS(data["y"].to_numpy(), np.eye(codes.max() + 1)[codes]).fit()
    higher = fit.df_resid - cells.df_resid
    if higher > 0.5:
        out[HIGHER] = (float(higher), float(fit.ssr - cells.ssr))
    out[SEEDS] = (float(cells.df_resid), float(cells.ssr))
    total = float(((data["y"] - data["y"].mean()) ** 2).sum())
    return out, total, float(len(data))


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


def interval(point, drawn, method="expanded", n_seeds=None):
    """The LEVEL interval of each row of `drawn` (terms x resamples) around `point`:
    "percentile"; "basic" (reflected about the point); "bc", the bias-corrected
    percentile interval (Efron 1981): percentiles shifted by how far the median of the
    resamples lies from the point estimate, which a share's skewed distribution needs."""
    from scipy.stats import norm

    a = (1 - LEVEL) / 2
    if method == "expanded":
        from scipy.stats import t

        a = float(norm.sf(t.ppf(1 - a, n_seeds - 1)))
        return np.nanquantile(drawn, a, axis=1), np.nanquantile(drawn, 1 - a, axis=1)
    if method == "percentile":
        return np.nanquantile(drawn, a, axis=1), np.nanquantile(drawn, 1 - a, axis=1)
    if method == "basic":
        q_lo, q_hi = np.nanquantile(drawn, a, axis=1), np.nanquantile(drawn, 1 - a, axis=1)
        return 2 * point - q_hi, 2 * point - q_lo
    below = (drawn < point[:, None]).mean(axis=1) + 0.5 * (drawn == point[:, None]).mean(axis=1)
    z0 = norm.ppf(np.clip(below, 1 / drawn.shape[1], 1 - 1 / drawn.shape[1]))
    za = norm.ppf([a, 1 - a])
    lo_q, hi_q = norm.cdf(2 * z0 + za[0]), norm.cdf(2 * z0 + za[1])
    lo = np.array([np.nanquantile(d, q) for d, q in zip(drawn, lo_q)])
    hi = np.array([np.nanquantile(d, q) for d, q in zip(drawn, hi_q)])
    return lo, hi


# -- a sweep's ----------------------------------------------------------------------------


def what_matters(analysis, study=None, manifest=None, n_boot=N_BOOT) -> WhatMatters:
    """The variance shares of every result metric of a grid sweep with seeds (the study's
    metrics first), or a WhatMatters whose `reason` says why there are none."""
    from mlpsweep.report.analysis import SUMMARY
    from mlpsweep.report.contrast import DIFFERENCE
    from mlpsweep.report.study import METRICS

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
        table = shares(frame, dims, n_boot=n_boot)
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
