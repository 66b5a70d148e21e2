"""A report figure as a declared object (FigureSpec), and what figures are drawn from
(FigureContext: the analysis, the study, and the fits, each computed once)."""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from matplotlib.figure import Figure

from mlpsweep.report.analysis import Analysis, fmt
from mlpsweep.report.collapse import noise_collapse
from mlpsweep.report.figures.labels import twin_of
from mlpsweep.report.plotting import slug
from mlpsweep.report.scaling import scaling
from mlpsweep.report.study import Study

MAX_FIGURE_CONFIGS = 25  # more configs than this are drawn coarsened (see coarsen)


@dataclass
class FigureContext:
    """What the figures of one report are drawn from."""

    analysis: Analysis
    study: Study | None = None
    search: object | None = None  # tuning.Tuning of an adaptive search, if any
    manifests: tuple = ()  # the sweeps' SweepManifests (a search's design is not a grid)
    halving: object | None = None  # halving.HalvingOutcome of a halving sweep, if any

    @cached_property
    def collapse(self):
        """collapse.Collapse (the lr/B fit), or None."""
        return noise_collapse(self.analysis, frozenset(twin_of(self.analysis)))

    @cached_property
    def scaling(self):
        """scaling.Scaling (B_crit), or None."""
        tried = self.halving.tried_lrs if self.halving is not None else None
        return scaling(self.analysis, tried=tried)

    @cached_property
    def importance(self):
        """importance.WhatMatters: the variance shares of a grid with seeds."""
        from mlpsweep.report.importance import what_matters

        search = next((m for m in self.manifests if m.adaptive), None)
        return what_matters(self.analysis, self.study, search)

    @cached_property
    def coarse(self) -> "Coarsened":
        return coarsen(self.analysis)

    @property
    def oscillation(self) -> bool:
        """Whether runs have a window to compare: runs stopped at their target do not
        (not_measured.run_endings)."""
        return bool(len(self.analysis.history)) and not self.analysis.stopped_at_target


@dataclass(frozen=True)
class FigureSpec:
    """One figure of the report. Adding a figure is one new FigureSpec in the FIGURES of
    its family's module (figures/<family>.py)."""

    title: str  # its heading on the page; its files are report/<slug(title)>.png, .svg
    order: int  # its place on the page: lower first
    applies: Callable[[FigureContext], bool]
    draw: Callable[[FigureContext], Figure | None]  # None: nothing to show after all
    caption: str | Callable[[FigureContext], str]
    lead: int | None = None  # may lead the page (beside the findings): lower is preferred
    more: bool | Callable[[FigureContext], bool] = False  # under "More figures" (collapsed)
    coarse: bool = False  # drawn over the coarsened configs, whose note ends the caption

    @property
    def name(self) -> str:
        return slug(self.title)

    def caption_for(self, ctx: FigureContext) -> str:
        text = self.caption(ctx) if callable(self.caption) else self.caption
        return text + (ctx.coarse.note if self.coarse else "")

    def is_more(self, ctx: FigureContext) -> bool:
        return self.more(ctx) if callable(self.more) else self.more

    def analysis(self, ctx: FigureContext) -> Analysis:
        """The analysis it draws: the coarsened one for a `coarse` figure."""
        return ctx.coarse.analysis if self.coarse else ctx.analysis


class Coarsened(NamedTuple):
    """An analysis drawn over its first dims only, and the note that says so."""

    analysis: Analysis
    note: str


def coarsen(analysis, max_configs=MAX_FIGURE_CONFIGS) -> Coarsened:
    """(`analysis` with configs made of the first dims only, so at most `max_configs`
    remain; a note saying which dims were averaged over, or ""). A 100-config grid drawn
    config by config is neither readable nor quick."""
    if len(analysis.configs) <= max_configs or len(analysis.dims) < 2:
        return Coarsened(analysis, "")
    dims = analysis.dims
    keep = dims[:1]
    for k in range(len(dims) - 1, 0, -1):
        if analysis.runs[dims[:k]].astype(str).drop_duplicates().shape[0] <= max_configs:
            keep = dims[:k]
            break
    rest = [d for d in dims if d not in keep]
    runs = analysis.runs.copy()
    runs["config"] = runs[keep].apply(
        lambda r: ", ".join(f"{d}={fmt(v)}" for d, v in zip(keep, r)), axis=1
    )
    order = runs.sort_values(keep)["config"]
    history = analysis.history.drop(columns="config").merge(runs[["run_id", "config"]], on="run_id")
    coarse = Analysis(runs, history, keep, list(dict.fromkeys(order)))
    return Coarsened(
        coarse,
        f" Averaged over {', '.join(rest)} ({len(analysis.configs)} configs in all): "
        "bands and dots are over every run of a setting, not over seeds alone.",
    )
