"""What a referee asks of a critical batch size (scaling.py) before believing it:

- Lack of fit: do the steps miss S = Smin + Emin/B by more than seed noise? Each batch
  size's residual log(S / S_fit) over its standard error from the seeds; their squares
  summed are chi-squared on (batch sizes - 2) degrees of freedom (the seeds' shared luck
  makes the errors correlated, so the p-value is approximate). Where it fails (p < 0.05)
  the residuals beyond SYSTEMATIC standard errors are named, neighbours of one sign
  together: the model's knee is too sharp or too soft there.
- Leave-one-out: B_crit refitted with each batch size left out in turn. One batch size
  that moves it out of its own bootstrap interval decides the number alone.
- B_simple against B_crit at each batch size, at a matched point of training: the
  median B_simple over each best-lr run's evaluations in the second half of its way to
  the target (where the target is decided; early B_simple is far smaller), geometric
  mean over seeds with its interval, divided by B_crit (its bootstrap interval added in
  quadrature on the log scale). It agrees when that interval lies within a factor
  TOLERANCE of 1, disagrees when it lies wholly outside, and cannot tell otherwise: a
  verdict that can fail, batch size by batch size, never pooled over them.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from mlpsweep.report.intervals import mean_interval
from mlpsweep.report.scaling_fit import b_crit_of

TOLERANCE = 2.0  # B_simple "agrees" with B_crit when its interval lies in [1/2, 2] x B_crit
SYSTEMATIC = 2.0  # a residual beyond this many standard errors is named


@dataclass
class Checks:
    residuals: pd.DataFrame  # batch_size, steps, fitted, residual (relative), se (log), z
    chi2: float  # NaN without seed noise to compare with (one seed)
    dof: int
    p: float
    loo: pd.DataFrame  # batch_size (left out), bcrit
    noise: pd.DataFrame  # batch_size, b_simple, seeds, ratio, lo, hi, verdict

    def fit_sentence(self):
        r = self.residuals
        span = f"{r['residual'].min():+.0%} to {r['residual'].max():+.0%}"
        if not math.isfinite(self.chi2):
            return (
                f"The fit's residuals run from {span}; with one seed per batch size they "
                "cannot be told from seed noise."
            )
        test = f"chi² {self.chi2:.1f} on {self.dof} df, p = {self.p:.2g}"
        named = systematic(r)
        if self.p < 0.05:
            return f"Lack of fit: the steps miss the model by more than seed noise ({test})" + (
                f": {named}." if named else f"; residuals {span}."
            )
        return f"The model fits within seed noise ({test}; residuals {span})."

    def loo_sentence(self, sc):
        if not len(self.loo):
            return ""
        finite = self.loo[np.isfinite(self.loo["bcrit"])]
        if not len(finite):
            return "Left out in turn, every batch size leaves a fit without saturation."
        lo, hi = finite.loc[finite["bcrit"].idxmin()], finite.loc[finite["bcrit"].idxmax()]
        out = self.loo[
            ~self.loo["bcrit"].between(sc.bcrit_lo, sc.bcrit_hi) | ~np.isfinite(self.loo["bcrit"])
        ]
        text = (
            f"Each batch size left out in turn moves B_crit to between {lo['bcrit']:.3g} "
            f"(without B={lo['batch_size']:g}) and {hi['bcrit']:.3g} (without "
            f"B={hi['batch_size']:g})"
        )
        if len(out):
            which = ", ".join(f"B={b:g}" for b in out["batch_size"])
            moved = np.abs(np.log(finite["bcrit"] / sc.bcrit))
            most = finite.loc[moved.idxmax()]
            return (
                f"{text}; {len(out)} of {len(self.loo)} take it outside its interval "
                f"({which}), most of all B={most['batch_size']:g} ({most['bcrit']:.3g} "
                f"against {sc.bcrit:.3g}): the number leans on "
                f"{'that batch size' if len(out) == 1 else 'them'}."
            )
        return text + ", all inside its interval."

    def noise_sentence(self):
        if not len(self.noise):
            return ""
        n = self.noise
        parts = []
        for verdict in ("agrees", "disagrees", "cannot tell"):
            g = n[n["verdict"] == verdict]
            if len(g):
                each = ", ".join(
                    f"B={r.batch_size:g} ({r.ratio:.2g}x"
                    + (f", [{r.lo:.2g}, {r.hi:.2g}]" if np.isfinite(r.lo) else ", one seed")
                    + ")"
                    for r in g.itertuples()
                )
                parts.append(f"{verdict} at {each}")
        return (
            "B_simple at a matched point of training (each best-lr run's median over the "
            f"second half of its way to the target), against B_crit within a factor of "
            f"{TOLERANCE:g} (95% interval of the ratio): " + "; ".join(parts) + "."
        )


def systematic(residuals):
    """The residuals beyond SYSTEMATIC standard errors in words, neighbours of one sign
    together: "+23% at B=2; -16% to -12% at B=16-64"."""
    r = residuals.reset_index(drop=True)
    big = (r["z"].abs() > SYSTEMATIC).to_numpy()
    runs, k = [], 0
    while k < len(r):
        if not big[k]:
            k += 1
            continue
        j = k
        while j + 1 < len(r) and big[j + 1] and np.sign(r["z"][j + 1]) == np.sign(r["z"][k]):
            j += 1
        runs.append(r.iloc[k : j + 1])
        k = j + 1
    words = []
    for g in runs:
        lo, hi = g["residual"].min(), g["residual"].max()
        size = f"{lo:+.0%}" if len(g) == 1 else f"{lo:+.0%} to {hi:+.0%}"
        where = f"B={g['batch_size'].iloc[0]:g}" + (
            f"-{g['batch_size'].iloc[-1]:g}" if len(g) > 1 else ""
        )
        way = "above" if lo > 0 else "below"
        words.append(f"the steps lie {way} the model at {where} ({size})")
    return "; ".join(words)


def residuals(sc, best):
    """Per batch size: mean steps, the fit's, the relative residual, and the standard
    error of log steps over seeds with the residual in those units (z)."""
    b = sc.table["batch_size"].to_numpy(float)
    steps = sc.table["steps"].to_numpy(float)
    fitted = sc.smin + sc.emin / b
    se = np.array(
        [
            np.std(np.log(best[k][1]), ddof=1) / math.sqrt(len(best[k][1]))
            if len(best[k][1]) > 1
            else np.nan
            for k in sc.table["batch_size"]
        ]
    )
    # seeds that agree to the step leave no noise to measure: a floor of half a step
    se = np.where(np.isfinite(se), np.maximum(se, 0.5 / steps), se)
    z = np.log(steps / fitted) / se
    return pd.DataFrame(
        {"batch_size": b, "steps": steps, "fitted": fitted, "residual": steps / fitted - 1,
         "se": se, "z": z}
    )  # fmt: skip


def leave_one_out(sc):
    """B_crit refitted without each batch size in turn (4 batch sizes or more)."""
    t = sc.table
    if len(t) < 4:
        return pd.DataFrame({"batch_size": [], "bcrit": []})
    points = list(zip(t["batch_size"], t["steps"]))
    return pd.DataFrame(
        {
            "batch_size": t["batch_size"].to_numpy(float),
            "bcrit": [b_crit_of(points[:k] + points[k + 1 :]) for k in range(len(points))],
        }
    )


def matched_b_simple(analysis, best):
    """{batch size: per-seed B_simple at the matched point} (see the module docstring)."""
    h = analysis.history
    if "b_simple" not in h:
        return {}
    runs = analysis.finished
    out = {}
    for b, (lr, _) in best.items():
        keep = runs[(runs["batch_size"] == b) & (runs["lr"] == lr)]
        values = []
        for rid, target in zip(keep["run_id"], keep.get("steps_to_target", [np.nan] * len(keep))):
            run = h[h["run_id"] == rid].dropna(subset=["b_simple"])
            end = pd.to_numeric(pd.Series([target]), errors="coerce").iloc[0]
            end = end if np.isfinite(end) else run["step"].max()
            window = run[(run["step"] >= end / 2) & (run["step"] <= end)]["b_simple"]
            window = pd.to_numeric(window, errors="coerce")
            window = window[np.isfinite(window) & (window > 0)]
            if len(window):
                values.append(float(window.median()))
        if values:
            out[b] = np.array(values)
    return out


def noise_against(sc, per_batch):
    """Per batch size: B_simple (geometric mean over seeds), its ratio to B_crit with a
    95% interval (both intervals on the log scale, in quadrature), and the verdict."""
    rows = []
    finite = 0 < sc.bcrit_lo and np.isfinite(sc.bcrit_hi)
    h_crit = (math.log(sc.bcrit_hi) - math.log(sc.bcrit_lo)) / 2 if finite else math.inf
    for b, values in sorted(per_batch.items()):
        iv = mean_interval(values, log=True)
        ratio = iv.mean / sc.bcrit
        if iv.n > 1 and math.isfinite(h_crit):
            half = math.hypot(math.log(iv.hi / iv.mean), h_crit)
            lo, hi = ratio * math.exp(-half), ratio * math.exp(half)
        else:
            lo = hi = math.nan
        verdict = (
            "cannot tell"
            if not math.isfinite(lo)
            else "agrees"
            if 1 / TOLERANCE <= lo and hi <= TOLERANCE
            else "disagrees"
            if hi < 1 / TOLERANCE or lo > TOLERANCE
            else "cannot tell"
        )
        rows.append(
            {"batch_size": float(b), "b_simple": iv.mean, "seeds": iv.n, "ratio": ratio,
             "lo": lo, "hi": hi, "verdict": verdict}
        )  # fmt: skip
    return pd.DataFrame(
        rows, columns=["batch_size", "b_simple", "seeds", "ratio", "lo", "hi", "verdict"]
    )


def checks(sc, best, analysis) -> Checks:
    """The Checks of a fitted Scaling `sc` (best: {batch size: (lr, per-seed steps)})."""
    r = residuals(sc, best)
    used = r[np.isfinite(r["z"])]
    dof = len(r) - 2
    if len(used) == len(r) and dof > 0:
        chi2 = float((used["z"] ** 2).sum())
        p = float(stats.chi2.sf(chi2, dof))
    else:
        chi2 = p = math.nan
    return Checks(
        r, chi2, dof, p, leave_one_out(sc), noise_against(sc, matched_b_simple(analysis, best))
    )
