"""The ANOVA behind the variance shares (importance.py): statsmodels' type II table
(OLS + anova_lm) of the knobs and their pairs with the seeds' within-config residual, and
the same table computed for many bootstrap resamples at once (`type2`: resample = how often
each seed was drawn), which equals the library's at unit weights (tests/test_importance.py).
"""

import itertools
import warnings

import numpy as np
import pandas as pd

LEVEL = 0.95
SEEDS = "seeds"
HIGHER = "higher-order interactions"


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
    with warnings.catch_warnings():
        # A grid with empty cells (configs left out as degenerate) makes the design
        # rank-deficient; statsmodels warns on the console of every report (the terms'
        # sums of squares are still the model comparisons'; noted in the issue tracker).
        warnings.simplefilter("ignore")
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
