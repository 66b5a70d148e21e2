"""Why a metric is NaN: the reasons a run's records give for each metric not measured
(WHY, one value per run), how they read as one line, and the runs whose oscillation
windows cannot be compared (diverged, or stopped at their target)."""

from mlpsweep.core.status import Status

WHY = "_not_measured"  # {metric: why it is NaN} per run: typed, for the report's own use


def reasons_text(why: dict) -> str:
    """{metric: reason} as one value: each reason once, after the metrics it holds for."""
    metrics_of: dict[str, list[str]] = {}
    for metric, reason in why.items():
        metrics_of.setdefault(reason, []).append(metric)
    return "; ".join(f"{', '.join(m)}: {reason}" for reason, m in metrics_of.items())


def not_measured_reason(runs, metric) -> str:
    """Why `metric` is NaN for `runs`: the most common reason their records give, or ""."""
    if WHY not in runs:
        return ""
    found = [w[metric] for w in runs[WHY] if isinstance(w, dict) and metric in w]
    return max(set(found), key=found.count) if found else ""


def run_endings(runs):
    """{run_id: why its oscillation windows cannot be measured} for runs that diverged
    (the last half holds the blow-up) or stopped at their target (their windows end at
    different points of training, so they compare unlike phases)."""
    out = {}
    for row in runs.itertuples(index=False):
        row = row._asdict()
        if row.get("status") == Status.DIVERGED:
            out[row["run_id"]] = f"the run diverged at step {_int(row.get('diverged_step'))}"
        elif bool(row.get("stop_at_target")) and row.get("steps_to_target") == row.get(
            "steps_done"
        ):
            out[row["run_id"]] = (
                f"the run stopped at its target at step {_int(row.get('steps_done'))}"
            )
    return out


def _int(value):
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return "?"
