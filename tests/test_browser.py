"""A real browser opens the report: headless Chromium (Debian's `chromium`)."""

import contextlib
import http.server
import os
import re
import shutil
import subprocess
import threading
from functools import partial

import pytest

from mlpsweep.bench.report import synthetic_sweep
from mlpsweep.report import build_report, compare

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHECK = """<!doctype html><title>pending</title>
<iframe id="r" src="PAGE" width="1200" height="800"></iframe>
<script>
document.getElementById("r").onload = function () {
  var imgs = Array.from(this.contentDocument.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 100; });
  document.title = "images " + imgs.length + " loaded " + ok.length;
};
</script>"""


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="no chromium installed (CI installs it and never skips this)",
)
@pytest.mark.slow  # a real browser
@pytest.mark.parametrize("page", ["report.html", "comparison.html"])
def test_report_loads_its_images_in_chromium(tmp_path, page):
    sweep = synthetic_sweep(tmp_path / "sweep", 10, 200)
    if page == "report.html":
        build_report(sweep)
    else:  # two sweeps side by side: `mlpsweep compare`, its page and figures
        other = synthetic_sweep(tmp_path / "other", 10, 200)
        compare([sweep, other], sweep / page)
    (sweep / "check.html").write_text(CHECK.replace("PAGE", page))
    with serve(sweep) as url:
        browser = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
        title = page_title(browser, f"{url}/check.html")
        n, loaded = map(int, re.fullmatch(r"images (\d+) loaded (\d+)", title).groups())
        assert n >= 5 and loaded == n, title
        shot = tmp_path / "report.png"
        subprocess.run(
            [
                *browser,
                "--hide-scrollbars",
                f"--screenshot={shot}",
                "--window-size=1250,2000",
                f"{url}/{page}",
            ],
            capture_output=True,
            timeout=120,
        )
        assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
        # Console messages (script errors, resources that fail to load): none from the
        # report; and the check itself sees one on a page made to have one.
        (sweep / "broken.html").write_text("<script>undefined_function()</script><p>x</p>")
        assert console_messages(browser, f"{url}/{page}") == []
        assert any(
            "undefined_function" in m for m in console_messages(browser, f"{url}/broken.html")
        )


def page_title(browser, url):
    """The page's title once its scripts have run (our check pages report in it)."""
    dom = subprocess.run(
        [*browser, "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return re.search(r"<title>(.*?)</title>", dom.stdout).group(1)


def console_messages(browser, url):
    """What the page wrote to its console while loading (Chromium logs each message on
    stderr as `...:CONSOLE:<line>] "<message>", source: ...`)."""
    p = subprocess.run(
        [
            *browser,
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return re.findall(r":CONSOLE(?:\(\d+\)|:\d+)\] (.*)", p.stderr)


LAYOUT = """<!doctype html><title>pending</title>
<iframe id="r" src="report.html" width="1280" height="800"></iframe>
<script>
document.getElementById("r").onload = function () {
  var d = this.contentDocument, top = function (el) { return el.getBoundingClientRect().top; };
  try {
    var lead = d.querySelector(".lead img"), first = d.querySelector("ul.findings li");
    document.title = ["height", d.documentElement.scrollHeight, "findings",
      d.querySelectorAll("ul.findings li").length, "first", Math.round(top(first)),
      "figure", Math.round(top(lead))].join(" ");
  } catch (e) { document.title = "the page's layout could not be read: " + e; }
};
</script>"""


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="no chromium installed (CI installs it and never skips this)",
)
def test_a_500_run_four_dimension_report_fits_five_screens(tmp_path):
    """The issue's large grid (5 lr x 5 batch x 2 depth x 2 width x 5 seeds), 1280 px
    wide: the headline, the main effects and a figure on the first screen (800 px), at
    most 10 finding lines, the whole page under 5 screens."""
    sweep = synthetic_sweep(tmp_path / "sweep", 500, 200)
    build_report(sweep)
    (sweep / "layout.html").write_text(LAYOUT)
    browser = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    with serve(sweep) as url:  # a file:// page may not look into its iframe
        title = page_title(browser, f"{url}/layout.html")
    m = re.fullmatch(r"height (\d+) findings (\d+) first (\d+) figure (\d+)", title)
    assert m, title
    height, findings, first, figure = map(int, m.groups())
    assert findings <= 10 and first < 800 and figure < 800, title
    assert height <= 5 * 800, title


@contextlib.contextmanager
def serve(folder):
    """`folder` over HTTP on 127.0.0.1 (a free port); yields its URL."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
