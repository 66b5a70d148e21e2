"""The report's tables as a reader sees them: the summary sorted by the study's own
metric, and every "–" (a number that is not there) marked with a footnote saying why."""

import pandas as pd

from mlpsweep.core.status import FINISHED
from mlpsweep.report.metrics import METRICS, SUMMARY
from mlpsweep.report.not_measured import not_measured_reason

DASH = "–"


class Footnotes:
    """Numbered reasons, each given once; `dash(why)` is the cell that shows one."""

    def __init__(self):
        self._why = {}

    def dash(self, why: str) -> str:
        n = self._why.setdefault(why, len(self._why) + 1)
        return f"{DASH} [{n}]"

    def items(self):
        return [(n, why) for why, n in self._why.items()]


def sort_metric(analysis, study, search=None) -> str:
    """The summary's sort column: the page's one rule for best (study.select_by: a search's
    objective, else the study's outcome metric, e.g. steps to target), else the study's
    first metric the summary shows, else test accuracy."""
    candidates = [study.select_by, *([search.objective] if search is not None else [])]
    candidates += list(study.metrics)
    if analysis.stopped_at_target:
        candidates.insert(0, "steps_to_target")
    candidates.append("test_accuracy")
    for metric in candidates:
        if metric in SUMMARY and metric in analysis.runs:
            values = pd.to_numeric(analysis.runs[metric], errors="coerce")
            if values.notna().any():
                return metric
    return "test_accuracy"


def sort_label(metric, study=None) -> str:
    label, higher = METRICS[metric]
    if study is not None and metric == study.select_by:
        return f"best {label} (the page's rule for best) first"
    return f"{'highest' if higher else 'lowest'} {label} first"


def summary_text(table, cols, analysis, notes):
    """The summary's cells, each "–" with its footnote: the reason the runs' records give
    for not measuring it, or that no run of the config finished."""
    label_of = {METRICS[m][0]: m for m in SUMMARY}
    rows = []
    for _, row in table.iterrows():
        runs = analysis.runs[analysis.runs["config"] == row["config"]]
        cells = []
        for c in cols:
            v = row[c]
            if v == DASH and c in label_of:
                cells.append(notes.dash(_why_missing(runs, label_of[c], analysis)))
            else:
                cells.append(v)
        rows.append(cells)
    return rows


def _why_missing(runs, metric, analysis):
    label = METRICS[metric][0]
    done = runs[runs["status"].isin(FINISHED)]
    if not len(done):
        return "no run of this config finished (see Runs)"
    why = not_measured_reason(done, metric)
    if why:  # its numbers (which loss, which steps) are in "Not measurable here"
        return f"{label}: not measurable here: {why.split(' (')[0]}"
    if metric.endswith("_to_target"):
        return f"{label}: the run never reached its target"
    if analysis.stopped_at_target:
        return f"{label}: not measured (runs stop at their target)"
    return f"{label}: not recorded by these runs"


def run_cells(r, notes) -> dict:
    """One row of the Runs table."""
    unfinished = "the run did not finish (see its status)"
    return {
        "run_id": r["run_id"],
        "status": r["status"],
        "error": r.get("error") or "",
        "loss": _num(r.get("final_train_loss"), notes, unfinished),
        "acc": _num(r.get("test_accuracy"), notes, "no test evaluation recorded"),
        "seconds": _num(r.get("job_seconds"), notes, "no time recorded", ".1f"),
        "command": r.get("reproduce") or "",
    }


def _num(value, notes, why, spec=".4g"):
    try:
        if value is not None and value == value:
            return format(float(value), spec)
    except (TypeError, ValueError):
        pass
    return notes.dash(why)
