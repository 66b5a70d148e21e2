"""Every kind of report page read at 1280 px in a real browser (headless Chromium), as
../shared/tools/legible.py measures it: the one-seed sweep, batch_oscillation,
batch_scaling_quick, an Optuna search and a comparison. Each page: every image loaded,
the smallest figure text >= 10 CSS px as displayed, no figure wider than the page shows
it, no figure whose ink touches its own edge (text or marks cut off), no two texts of a
figure overlapping (matplotlib's renderer), and the verdict line first."""

import html
import json
import re

import numpy as np
import pytest
from helpers import multirun
from PIL import Image
from test_browser import CHROMIUM, FLAGS, page_title, serve
from test_figures import check

from mlpsweep.report import compare
from mlpsweep.report.analysis import analyse
from mlpsweep.report.collect import collect
from mlpsweep.report.figures import FigureContext, drawn
from mlpsweep.report.study import Study
from mlpsweep.report.tuning import tuning

pytestmark = [
    pytest.mark.slow,  # five small real sweeps and a browser per page
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium (CI installs it)"),
]
TINY = ["depth=1", "width=32"]
SWEEPS = {  # page kind: the command's overrides (small: the page's shape, not its numbers)
    "one_seed": ["batch_size=10,100", "steps=300", *TINY],
    "batch_oscillation": ["+sweep=batch_oscillation", "steps=300", "seed=range(2)", *TINY],
    "batch_scaling_quick": ["+sweep=batch_scaling_quick", "width=64"],
    "optuna": [
        "hydra/sweeper=optuna",
        "+sweep=lr_tune",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.n_jobs=1",
        "steps=100",
        *TINY,
    ],
}
MEASURE = """<!doctype html><title>pending</title>
<iframe id="r" src="PAGE" width="1280" height="900" style="border:0"></iframe>
<script>
document.getElementById("r").onload = function () {
  var d = this.contentDocument, out = {images: [], verdict: null};
  Array.from(d.images).forEach(function (i) {
    out.images.push([i.getAttribute("alt"), i.complete, i.clientWidth, i.naturalWidth,
                     i.getBoundingClientRect().top]);
  });
  var v = d.getElementById("verdict");
  if (v) out.verdict = [v.getBoundingClientRect().top, v.textContent];
  document.title = "R" + JSON.stringify(out);
};
</script>"""


class Pages(dict):
    """{kind: report.html}, each page built when first asked for: under pytest-xdist a
    module's tests are spread over workers, and each worker builds only its own."""

    def __init__(self, root):
        super().__init__()
        self.root = root

    def __missing__(self, kind):
        folder = self.root / kind
        if kind == "comparison":
            folder.mkdir()  # as `mlpsweep compare` makes its --out (writes never make it)
            sweeps = [self["one_seed"].parent, self["batch_oscillation"].parent]
            self[kind] = compare(sweeps, folder / "report.html")
        else:
            multirun(folder, *SWEEPS[kind])
            self[kind] = folder / "report.html"
        return self[kind]


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """{kind: report.html} of the five kinds of page (built as tests ask for them)."""
    return Pages(tmp_path_factory.mktemp("pages"))


@pytest.mark.parametrize("kind", [*SWEEPS, "comparison"])
def test_a_page_reads_at_1280_px(pages, kind, tmp_path):
    page = pages[kind]
    folder = page.parent
    (folder / "measure.html").write_text(MEASURE.replace("PAGE", page.name))
    browser = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    with serve(folder) as url:  # a file:// page may not look into its iframe
        title = page_title(browser, f"{url}/measure.html")
    assert title.startswith("R"), title
    seen = json.loads(html.unescape(title[1:]))
    top, verdict = seen["verdict"]
    assert top < 300 and len(verdict.split()) <= 32, verdict  # the answer first, short
    images = [i for i in seen["images"] if i[3] > 100]
    assert images and all(i[1] for i in seen["images"]), seen["images"]  # all loaded
    lead = min(images, key=lambda i: i[4])
    assert lead[4] < 900, ("the first figure is not on the first screen", lead)
    for alt, _, shown, natural, _ in images:
        svg = folder / "report" / (re.sub(r"[^a-z0-9]+", "_", alt.lower()).strip("_") + ".svg")
        smallest = smallest_text_px(svg.read_text(), shown)
        assert smallest >= 9.95, (kind, alt, f"smallest text {smallest:.1f} px")
        # shown at its own size: 90 px an inch, never shrunk to fit
        assert shown == natural * 90 // 150 or abs(shown - natural * 0.6) <= 1, (alt, shown)
    for png in (folder / "report").glob("*.png"):
        assert not ink_at_edge(png), (kind, png.name, "ink touches the edge: clipped")


@pytest.mark.parametrize("kind", [*SWEEPS, "comparison"])
def test_no_two_texts_of_a_figure_overlap(pages, kind):
    """matplotlib's own boxes of every title, label, tick label and legend (test_figures'
    check) for the figures of each kind of page."""
    folder = pages[kind].parent
    tables = collect(folder, write=False) if kind != "comparison" else None
    if tables is None:
        from mlpsweep.report.build import side_by_side

        tables = side_by_side([pages["one_seed"].parent, pages["batch_oscillation"].parent])
    study = Study.from_dict(tables.manifests[0].study)
    analysis = analyse(tables, first=study.compare)
    search = tuning(analysis, tables.manifests[0], study) if kind != "comparison" else None
    for spec, fig in drawn(FigureContext(analysis, study, search)):
        check(f"{kind}: {spec.title}", fig)


def smallest_text_px(svg, shown_px):
    """The smallest text of a figure in CSS px as displayed (legible.py's measure): its
    smallest font in pt (glyph scale x 100, or a font-size) x shown width / SVG width."""
    width_pt = float(re.search(r'<svg[^>]*width="([0-9.]+)pt"', svg).group(1))
    sizes = [float(x) * 100 for x in re.findall(r"scale\(([0-9.]+) -[0-9.]+\)", svg)]
    sizes += [float(x) for x in re.findall(r"font-size[:=]\s*\"?([0-9.]+)", svg)]
    return min(sizes) * shown_px / width_pt


def ink_at_edge(png, band=3):
    a = np.asarray(Image.open(png).convert("L")) < 128
    return bool(a[:, :band].any() or a[:, -band:].any() or a[:band].any() or a[-band:].any())


def test_the_measures_see_what_they_measure(tmp_path):
    """The checks can fail: a figure's ink at its edge, text smaller than 10 px."""
    img = np.full((50, 80), 255, np.uint8)
    Image.fromarray(img).save(tmp_path / "clean.png")
    img[20:30, 76:80] = 0
    Image.fromarray(img).save(tmp_path / "cut.png")
    assert not ink_at_edge(tmp_path / "clean.png") and ink_at_edge(tmp_path / "cut.png")
    svg = '<svg width="720pt" height="360pt"><g transform="translate(1 2) scale(0.08 -0.08)">'
    assert smallest_text_px(svg, 900) == pytest.approx(10.0)  # 8 pt shown at 1.25 px a pt
    assert smallest_text_px(svg, 720) == pytest.approx(8.0)  # shrunk: too small
