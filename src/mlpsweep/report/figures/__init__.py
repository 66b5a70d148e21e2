"""The report's figures: a registry of declared figures (spec.FigureSpec), one module per
family. all_figures draws those that apply, in page order, and writes each as PNG (150
dpi) and SVG with a stable name, drawn once for both.

Families: search (an adaptive search's history), halving (its rungs), importance (what
matters: variance shares against seed noise), answers (main effects, noise collapse,
batch scaling), split (what oscillates), curves (loss and test metrics over training),
seed_dots (one dot per seed: the oscillation figure, the final test metrics), grid
(the heatmap).
"""

from pathlib import Path

from mlpsweep.report.figures import (
    answers,
    curves,
    grid,
    halving,
    importance,
    search,
    seed_dots,
    split,
)
from mlpsweep.report.figures.figure_spec import FigureContext, FigureSpec
from mlpsweep.report.plotting import SCREEN_DPI, FigureFile, legible, save

FAMILIES = (search, halving, importance, answers, split, curves, seed_dots, grid)
# The figures shown open below the lead one, in page order, until their heights reach
# this (about two screens at 1280 px); the rest are under "More figures", so a
# large grid's page stays a few screens long.
OPEN_FIGURES_IN = 14.0

__all__ = ["FAMILIES", "FigureContext", "FigureSpec", "all_figures", "drawn", "registered"]


def registered() -> tuple[FigureSpec, ...]:
    """Every family's FIGURES, in page order (read at each report: an entry added to a
    family's FIGURES is drawn from then on)."""
    return tuple(
        sorted((spec for family in FAMILIES for spec in family.FIGURES), key=lambda s: s.order)
    )


def drawn(ctx: FigureContext, figures=None) -> list:
    """[(spec, matplotlib Figure)] of the figures that apply to `ctx`, in page order."""
    out = []
    for spec in registered() if figures is None else figures:
        if spec.applies(ctx):
            fig = spec.draw(ctx)
            if fig is not None:
                out.append((spec, legible(fig)))
    return out


def all_figures(ctx: FigureContext, folder, figures=None) -> list[FigureFile]:
    """The figures that fit what was swept, in report order, written to `folder`; a
    FigureFile each. The style is set for these figures only (matplotlib's global state
    is left as it was). Labels are data (sweep names, values), so `$...$` in them is
    text, not mathtext."""
    import matplotlib as mpl
    import seaborn as sns

    from mlpsweep.records.files import guarded_mkdir

    guarded_mkdir(folder, Path(folder).parent)  # not through a linked report/ folder
    out = []
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        with mpl.rc_context({"text.parse_math": False, "svg.hashsalt": "mlpsweep"}):
            made = drawn(ctx, figures)
            leads = [spec for spec, _ in made if spec.lead is not None]
            lead = min(leads, key=lambda s: s.lead) if leads else None
            shown = 0.0  # inches of figure shown open below the lead one
            for spec, fig in made:
                more = spec.is_more(ctx)
                if not more and spec is not lead:
                    more = shown > 0 and shown + fig.get_figheight() > OPEN_FIGURES_IN
                    shown += 0 if more else fig.get_figheight()
                out.append(
                    FigureFile(
                        spec.title,
                        spec.caption_for(ctx),
                        spec.name,
                        save(fig, folder, spec.name),
                        int(fig.get_figwidth() * SCREEN_DPI),
                        more,
                        spec is lead,
                    )
                )
    return out
