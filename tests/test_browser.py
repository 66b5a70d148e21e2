"""A real browser opens the report: headless Chromium (Debian's `chromium`)."""

import http.server
import os
import re
import shutil
import subprocess
import threading
from functools import partial

import pytest

from mlpsweep.bench.report import synthetic_sweep
from mlpsweep.report import build_report

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
<iframe id="r" src="report.html" width="1200" height="800"></iframe>
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
def test_report_loads_its_images_in_chromium(tmp_path):
    sweep = synthetic_sweep(tmp_path / "sweep", 10, 200)
    build_report(sweep)
    (sweep / "check.html").write_text(CHECK)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(sweep))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        browser = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
        dom = subprocess.run(
            [*browser, "--virtual-time-budget=15000", "--dump-dom", f"{url}/check.html"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        title = re.search(r"<title>(.*?)</title>", dom.stdout).group(1)
        n, loaded = map(int, re.fullmatch(r"images (\d+) loaded (\d+)", title).groups())
        assert n >= 5 and loaded == n, title
        shot = tmp_path / "report.png"
        subprocess.run(
            [
                *browser,
                "--hide-scrollbars",
                f"--screenshot={shot}",
                "--window-size=1250,2000",
                f"{url}/report.html",
            ],
            capture_output=True,
            timeout=120,
        )
        assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
    finally:
        server.shutdown()
        server.server_close()
