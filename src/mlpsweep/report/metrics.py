"""Every metric the reports compare, each declared once (records.Metric: its label, which
way is better, its place in the summary, whether a search may tune it, its range, ratio or
difference), and what follows from the declarations: the metrics a study may name and
their labels (METRICS), the summary's columns and summary.csv's (SUMMARY), what "best"
may mean (GOALS), the metrics compared as differences (DIFFERENCE), each one's range.

Two kinds of metric, each declared in one place:

- a scalar a run records: a RunMetrics field declared with records.metric(...)
  (records/metrics.py), its value set by TrainResult.summary() (core/result.py);
- a metric derived from the runs' histories (the oscillation kind): a HistoryMetrics in
  MEASURES below, a function of a sweep's runs and history and the Metric of each column
  it adds. collect.measure computes every one, once, where the records are collected;
  the rest of the report reads their columns.

No pandas here: a sweep's planner checks a study's metrics against METRICS before its
first job, without loading it.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from mlpsweep.records.metrics import Metric, RunMetrics


@dataclass(frozen=True)
class HistoryMetrics:
    """Metrics derived from a sweep's histories. `table(runs, history)` gets runs.parquet's
    rows as the records give them and history.parquet's long form (both DataFrames, every
    run of the sweep: a window can depend on all of them) and returns one row per run_id
    with the columns it adds; `metrics` declares those that reports compare."""

    table: Callable[[Any, Any], Any]
    metrics: tuple[Metric, ...]

    def __post_init__(self):
        tuned = [m.name for m in self.metrics if m.objective]
        if tuned:  # a search's objective is a value the job itself returns (metrics.json)
            raise ValueError(f"{tuned[0]}: only a RunMetrics field can be a search's objective")


def oscillation(runs, history):
    """Each run's oscillation over the last half of its steps and over the sweep's window
    of equal examples (`_ex`), with why each NaN is not measured (oscillation.oscillation_table)."""
    from mlpsweep.report.not_measured import run_endings
    from mlpsweep.report.oscillation import oscillation_table

    return oscillation_table(history, run_endings(runs))


def equal_examples(m: Metric) -> Metric:
    """`m` over the window of examples every run of the sweep saw (its `_ex` column)."""
    return replace(m, name=f"{m.name}_ex", label=f"{m.label} over equal examples", summary=None)


SPREAD = (
    Metric("spread", "loss spread", summary=40),
    Metric("spread_rel", "relative loss spread", summary=50),
    Metric("spread_rel_ex", "relative loss spread over equal examples", summary=60),
    Metric("mean_abs_change", "mean |step change|"),
    Metric("mean_abs_change_rel", "relative mean |step change|", summary=110),
    Metric("spikes", "spikes", summary=120, ratio=False),
)
# The spread split into its parts (oscillation.oscillation): the minibatch's sampling noise, and
# the weights' own trajectory, estimated by subtraction or measured on a probe.
SPLIT = (
    Metric("spread_sampling_rel", "relative spread from sampling noise", summary=70),
    Metric("spread_trajectory_rel", "relative trajectory spread", summary=80),
    Metric("spread_trajectory_probe_rel", "relative trajectory spread (probe)", summary=90),
    Metric("sampling_share", "sampling share of the spread's variance", summary=100, most=1.0),
    Metric("spread_sampling", "spread from sampling noise"),
    Metric("spread_trajectory", "trajectory spread"),
    Metric("spread_trajectory_probe", "trajectory spread (probe)"),
    # the probe's spread before its own sampling noise is removed (core/trajectory.py)
    Metric("spread_trajectory_probe_raw", "uncorrected trajectory spread (probe)"),
    Metric("spread_trajectory_probe_rel_raw", "uncorrected relative trajectory spread (probe)"),
)
OSCILLATION = HistoryMetrics(oscillation, (*SPREAD, *SPLIT, *map(equal_examples, SPLIT)))

# Every history-derived metric: collect.measure adds each one's columns to the runs.
MEASURES: tuple[HistoryMetrics, ...] = (
    OSCILLATION,  # spread, its split into sampling noise and trajectory, spikes, ...
)


def declared(measures=MEASURES) -> dict[str, Metric]:
    """{name: Metric} of every metric reports compare: RunMetrics' declared fields, then
    the history-derived ones; ValueError for a name declared twice."""
    out: dict[str, Metric] = {}
    for m in (*RunMetrics.metrics(), *(m for h in measures for m in h.metrics)):
        if m.name in out:
            raise ValueError(f"metric {m.name!r} is declared twice")
        out[m.name] = m
    return out


DECLARED = declared()
METRICS = {name: (m.label, m.higher) for name, m in DECLARED.items()}  # label, higher better
# The summary's metric columns, in their declared places (a column no run has is left out).
SUMMARY = tuple(
    m.name for m in sorted(DECLARED.values(), key=lambda m: m.summary or 0) if m.summary is not None
)
# What "best" can mean when a nuisance (lr) is tuned: an outcome, not an oscillation
# metric (the calmest lr is the smallest, not the best); a search's objectives.
GOALS = tuple(name for name, m in DECLARED.items() if m.objective)
MAXIMISED = tuple(name for name in GOALS if DECLARED[name].higher)
# Compared as a difference (an accuracy, a count), never a ratio; the `_ex` form alike.
DIFFERENCE = frozenset(
    name for m in DECLARED.values() if not m.ratio for name in (m.name, f"{m.name}_ex")
)


def valid_range(metric):
    """(lowest, highest) value `metric` can take: every metric is >= 0; accuracies and
    shares are <= 1 (a declared `most`). Intervals and bands are clipped to it."""
    m = DECLARED.get(metric)
    return (0.0, m.most if m is not None else None)
