"""Building a report: a sweep directory -> runs.parquet, history.parquet and one
self-contained report.html (figures embedded) that answers the sweep's question."""

import base64
from dataclasses import replace
from importlib import resources
from pathlib import Path

import jinja2

from mlpsweep.core.status import Status
from mlpsweep.records.files import atomic_write
from mlpsweep.report.analysis import analyse, summary, summary_numbers, swept_dims
from mlpsweep.report.caveats import one_seed, sampling_split
from mlpsweep.report.collect import collect, write_tables
from mlpsweep.report.declared import declared_headline, unmeasured
from mlpsweep.report.effects import findings, headline
from mlpsweep.report.figures import FigureContext, all_figures
from mlpsweep.report.glossary import link_first_uses, used
from mlpsweep.report.halving import (
    finished_configs,
    halving_outcome,
    halving_study,
    paused_without_halving,
)
from mlpsweep.report.merge import side_by_side
from mlpsweep.report.provenance_section import provenance
from mlpsweep.report.study import Study
from mlpsweep.report.tables import (
    Footnotes,
    run_cells,
    sort_label,
    sort_metric,
    summary_text,
)
from mlpsweep.report.tuning import tuning
from mlpsweep.report.verdict import verdict

MAX_HEADLINE = 3  # sentences
MAX_FINDINGS = 10  # lines: the rest is in "Every contrast" and contrasts.csv
FINDINGS_BEFORE_FIGURE = 3  # the rest follow the lead figure, which must stay on the first screen
CONFOUND = (
    "Under grad_reduction=sum (the seed listing's backward) the gradient is summed over the "
    "batch, so a larger batch also takes a proportionally larger step: its effective "
    "learning rate is lr x batch_size. Compare runs with equal effective lr (grad_reduction="
    "mean with lr scaled to match) to separate less gradient noise from a larger step."
)


def render(title, command, tables, out_path, files_dir=None, merged=()):
    """Write report.html to `out_path`, its figures (PNG, SVG) to `files_dir` (default:
    report/ beside it) and summary.csv, contrasts.csv, importance.csv beside it.
    `merged`: lines naming the sweeps a merged report is the union of."""
    out_path = Path(out_path)
    files_dir = Path(files_dir or out_path.parent / "report")
    sweeps_meta = tables.manifests
    study = Study.from_dict(sweeps_meta[0].study)
    if len(sweeps_meta) == 1 and getattr(sweeps_meta[0], "adaptive", False):
        # a search's "best" is its objective's, on every line of the page
        study = replace(study, objective=sweeps_meta[0].objective or "")
    full, unfinished = tables, False
    if tables.halving is not None and "paused" in tables.runs:
        # The rest of the page compares the configs trained to the end (the finalists): a
        # run stopped at a rung is no sample of the full-length outcome.
        study = halving_study(study, tables.halving, swept_dims(tables.runs, tables.config_columns))
        kept = finished_configs(tables.runs, tables.halving)
        unfinished = not len(kept)  # stopped before any config was trained to the end
        kept = tables.runs if unfinished else kept
        history = tables.history[tables.history["run_id"].isin(kept["run_id"])]
        tables = replace(tables, runs=kept, history=history)
    paused_note = ""
    if tables.halving is None:
        kept, paused_note = paused_without_halving(tables.runs)
        history = tables.history[tables.history["run_id"].isin(kept["run_id"])]
        tables = replace(tables, runs=kept, history=history)
    analysis = analyse(tables, first=study.compare)
    lead, method = headline(analysis, study)
    search = tuning(analysis, sweeps_meta[0], study) if len(sweeps_meta) == 1 else None
    halving = None
    if tables.halving is not None:  # a halving sweep: what it chose and what it cost
        halving = halving_outcome(full.halving, full.runs, full.history)
    # its fits, computed once, serve the text too
    context = FigureContext(analysis, study, search, tuple(sweeps_meta), halving)
    collapse, batch_scaling = context.collapse, context.scaling
    top, contrast_table = findings(analysis, study)
    if batch_scaling is not None:  # whether B_crit can be trusted, first among the findings
        top = [*batch_scaling.check_lines(), *top]
    extra = [collapse.sentence()] if collapse is not None else []
    declared = declared_headline(analysis, study)
    if declared:  # the study's own comparisons, in its order; other lines go below
        fits = [batch_scaling.sentence()] if batch_scaling is not None else []
        lead, top = declared[:MAX_HEADLINE], [*fits, *extra, *top]
    elif search is not None:  # an adaptive search answers with what it found
        lead, top = [search.sentence()], [*extra, *lead, *top]
    else:
        if batch_scaling is not None:  # the batch-scaling study's answer comes first
            lead = [batch_scaling.sentence(), *lead]
        lead = [*lead[: MAX_HEADLINE - len(extra)], *extra]  # the rest is in the findings
    shares = context.importance  # what matters, against seed noise: the findings open with it
    if shares:
        top = [shares.metrics[0].sentence(), *top]
    elif any(m.adaptive for m in sweeps_meta) or len(analysis.dims) >= 2:
        top = [shares.reason, *top]
    notes = [paused_note, sampling_split(analysis, study), one_seed(analysis, command)]
    lead = [*lead, *filter(None, notes)]
    if halving is not None:  # the page opens with what halving chose, and its cost
        rest = (
            " Halving is unfinished: no config has been trained to the end yet; rerun the "
            "same command with resume=true to go on. The rest of the page compares the runs "
            "where they stopped."
            if unfinished
            else " The rest of the page compares the configs it trained to the end."
        )
        lead = [halving.sentence() + rest, *lead[: MAX_HEADLINE - 1]]
    top = [line for line in dict.fromkeys(top) if line not in lead]  # no finding twice
    top = top[:MAX_FINDINGS]  # what opens the list stays: the shares, the fits' checks
    sort_by = sort_metric(analysis, study, search)
    table = summary(analysis, sort_by=sort_by)
    cols = [c for c in table.columns if not c.startswith("_")]
    notes = Footnotes()
    problems = ", ".join(
        f"{n} {s}" for s, n in analysis.runs["status"].value_counts().items() if s != Status.OK
    )
    run_rows = [run_cells(r, notes) for _, r in analysis.runs.iterrows()]
    sweep_meta = sweeps_meta[0]
    n_seeds = int(seeds_per_config(analysis.runs).split(" to ")[-1] or 0)
    answer = verdict(analysis, study, search, batch_scaling, shares)
    top = [line for line in top if line not in answer]  # the verdict said it
    method = method if n_seeds > 1 else ""  # no interval to explain
    figures = all_figures(context, files_dir)
    summary_rows = summary_text(table, cols, analysis, notes)
    contrast_rows = [[_cell(v, notes) for v in r] for r in contrast_table.values.tolist()]
    texts = [answer, *lead, method, *top, *(f.caption for f in figures), *cols]
    terms = used([*texts, *(f.title for f in figures)])
    html = _template().render(
        title=title,
        command=command,
        merged=list(merged),
        dims=analysis.dims,
        n_runs=len(analysis.runs),
        n_seeds=n_seeds,
        verdict=answer,
        terms=terms,
        seeds_per_config=seeds_per_config(analysis.runs),
        problems=f"Not all runs finished: {problems}." if problems else "",
        question=study.question,
        headline=lead,
        warnings=[
            *([f"The study's own caveat: {study.caveat}"] if study.caveat else []),
            *(batch_scaling.warnings if batch_scaling is not None else []),
        ],
        method=method,
        findings=top,
        FINDINGS_BEFORE_FIGURE=FINDINGS_BEFORE_FIGURE,
        unmeasured=unmeasured(analysis, study),
        degenerate=[f"{c} {why}" for c, why in analysis.degenerate.items()],
        contrast_cols=list(contrast_table.columns),
        contrast_rows=contrast_rows,
        confound=CONFOUND if _has_sum_confound(analysis.runs) else "",
        sort_label=sort_label(sort_by, study),
        summary_cols=cols,
        summary_rows=summary_rows,
        footnotes=notes.items(),
        figures=[
            (f, base64.b64encode(f.png).decode(), f"{files_dir.name}/{f.name}") for f in figures
        ],
        run_rows=run_rows,
        provenance=provenance(sweep_meta, analysis.runs),
    )
    for name, df in (
        ("summary.csv", summary_numbers(table)),
        ("contrasts.csv", contrast_table),
        ("importance.csv", shares.csv()),
    ):
        atomic_write(out_path.parent / name, lambda f, df=df: df.to_csv(f, index=False))
    html = link_first_uses(html, terms, "<!--terms-->")
    atomic_write(out_path, lambda f: f.write(html.encode("utf-8")), durable=False)
    return out_path


def build_report(sweep_dir) -> Path:
    """Collect the sweep at `sweep_dir` and write its report.html; returns the path."""
    sweep_dir = Path(sweep_dir)
    tables = collect(sweep_dir)
    sweep = tables.manifest
    title = f"{sweep.sweep_name} — {sweep_dir.name}"
    return render(title, sweep.command, tables, sweep_dir / "report.html")


def merge_report(sweep_dirs, out_dir, keep_apart=False) -> Path:
    """One report over the union of several sweeps' runs (report/merge.py), written to
    `out_dir` (report.html, runs.parquet, history.parquet, the tables and figures); the
    source sweeps are only read."""
    from mlpsweep.report.merge import merge

    merged = merge(sweep_dirs, keep_apart=keep_apart)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = merged.tables
    write_tables(tables, out_dir)
    title = (
        "merged: "
        + ", ".join(f"{m.sweep_name}" for m in tables.manifests[:1])
        + (f" ({len(merged.sources)} sweeps)")
    )
    lines = [*merged.sources, merged.note]
    command = " | ".join(m.command for m in tables.manifests)
    return render(title, command, tables, out_dir / "report.html", merged=lines)


def compare(sweep_dirs, out_path) -> Path:
    """Several sweeps side by side in one report: `sweep` becomes a swept dimension."""
    tables = side_by_side(sweep_dirs)
    command = " | ".join(m.command for m in tables.manifests)
    out_path = Path(out_path)
    return render(
        "comparison of " + ", ".join(str(d) for d in sweep_dirs),
        command,
        tables,
        out_path,
        files_dir=out_path.parent / "report",
    )


def _has_sum_confound(runs):
    return (
        "effective_lr" in runs
        and "lr" in runs
        and (runs["effective_lr"] != runs["lr"]).any()
        and runs["batch_size"].nunique() > 1
    )


def _cell(value, notes):
    if isinstance(value, float):
        if value == value:
            return f"{value:.4g}"
        return notes.dash("one seed (or one run) per setting: no interval")
    return value


def _template():
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    text = resources.files("mlpsweep.report").joinpath("template.html.j2").read_text("utf-8")
    return env.from_string(text)


def seeds_per_config(runs):
    """ "3" or "2 to 3": the runs per config, counting only runs that know their config (an
    unfinished run has no knobs yet: counted, all in one NaN config, it read "14 seeds")."""
    known = runs[runs["seed"].notna()] if "seed" in runs else runs.iloc[:0]
    if known.empty:
        return ""
    sizes = known.groupby("config").size()
    low, high = int(sizes.min()), int(sizes.max())
    return str(high) if low == high else f"{low} to {high}"
