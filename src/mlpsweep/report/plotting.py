"""Figure plumbing shared by the report's figures: figures outside pyplot, their PNG
and SVG files, and the smoothing and limits of loss curves."""

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogFormatter

from mlpsweep.core.window import moving_average
from mlpsweep.records.files import atomic_write

PNG_DPI = 150
SCREEN_DPI = 90  # the size a figure is shown at in report.html: 1 pt = 1.25 CSS px
PAGE_WIDTH_PX = 1160  # the report's column at a 1280 px window (template.html.j2)
MAX_WIDTH_IN = PAGE_WIDTH_PX / SCREEN_DPI  # wider would be shrunk, and its text with it
MIN_FONT_PT = 8  # 10 CSS px at SCREEN_DPI: the smallest text a figure may hold


def subplots(rows, cols, figsize, **kwargs):
    """A figure outside pyplot: no backend to pick, no global state, nothing to close.
    Never wider than the page shows at its own size (MAX_WIDTH_IN)."""
    width, height = figsize
    fig = Figure(
        figsize=(min(width, MAX_WIDTH_IN), height), layout=kwargs.pop("layout", "constrained")
    )
    return fig, fig.subplots(rows, cols, **kwargs)


def legend_columns(labels, height_in, fontsize=9):
    """Columns a legend of `labels` needs to fit in a figure `height_in` tall."""
    lines = sum(1 + str(label).count("\n") for label in labels)
    per_column = max(1, int((height_in - 0.3) * 72 / (fontsize * 1.45)))
    return max(1, -(-lines // per_column))


def legible(fig):
    """Raise every text of `fig` (titles, labels, tick labels, legends, annotations) to at
    least MIN_FONT_PT, before its layout is computed: one rule for every figure."""
    from matplotlib.text import Text

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for which, ticks in (
                ("major", axis.get_major_ticks()),
                ("minor", axis.get_minor_ticks()),
            ):
                if ticks and ticks[0].label1.get_fontsize() < MIN_FONT_PT:
                    axis.set_tick_params(which=which, labelsize=MIN_FONT_PT)
    for text in fig.findobj(Text):
        if text.get_fontsize() < MIN_FONT_PT:
            text.set_fontsize(MIN_FONT_PT)
    return fig


def png(fig):
    """The figure itself: all_figures renders it to files (one draw per format)."""
    return fig


@dataclass
class FigureFile:
    title: str
    caption: str
    name: str  # report/<name>.png and .svg
    png: bytes
    width_px: int  # shown at SCREEN_DPI
    secondary: bool = False  # under "More figures" (collapsed): the page leads with the answer
    lead: bool = False  # shown beside the findings, on the page's first screen


def slug(title):
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


def save(fig, folder, name):
    """Write <name>.png and <name>.svg atomically; return the PNG's bytes."""
    out = {}
    for fmt_ in ("png", "svg"):
        buf = io.BytesIO()
        # No date in the SVG: an unchanged figure gives an unchanged file.
        fig.savefig(
            buf, format=fmt_, dpi=PNG_DPI, metadata={"Date": None} if fmt_ == "svg" else None
        )
        # The constrained layout is computed by the first draw; keep it for the second
        # (the layout pass costs as much as the drawing).
        fig.set_layout_engine("none")
        out[fmt_] = buf.getvalue()
        path = Path(folder) / f"{name}.{fmt_}"  # never through a linked report/ folder
        atomic_write(
            path, lambda f, d=out[fmt_]: f.write(d), durable=False, root=path.parent.parent
        )
    return out["png"]


SMOOTH_FRACTION = 0.02  # the bold mean is smoothed over 2% of its points


def smooth(mean, log):
    """The mean curve smoothed by a centred moving average (in log space on a log axis)."""
    window = int(len(mean) * SMOOTH_FRACTION) | 1
    if window < 3:
        return mean
    values = np.log(mean) if log else mean
    out = moving_average(values, window)
    return np.exp(out) if log else out


def robust_limits(values, log):
    """y-limits holding 99.8% of the points (a margin around them)."""
    v = values[np.isfinite(values)]
    if log:
        v = np.log(v[v > 0])
    if not len(v):
        return None, None
    lo, hi = np.quantile(v, [0.001, 0.999])
    pad = 0.05 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    return (np.exp(lo), np.exp(hi)) if log else (lo, hi)


def plain_log_axis(axis):
    """Plain numbers on a log axis (mathtext is off for the report's figures, and the
    default log labels are mathtext). Minor ticks are labelled (matplotlib's choice of
    which) only on an axis of about a decade or less, which may hold no power of ten to
    label at all (a loss between 0.2 and 0.6)."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


class PlainLogFormatter(LogFormatter):
    """LogFormatter's choice of the ticks to label, as plain numbers (0.2, not 2e-01)."""

    def __call__(self, x, pos=None):
        return f"{x:.3g}" if super().__call__(x, pos) else ""
