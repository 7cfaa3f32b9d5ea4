"""Figures and the self-contained HTML report (with a headless-Chromium integration test)."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import shutil
import subprocess

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import torch

import tests._runfns
from overtensor.cli import experiment as exp_cli
from overtensor.cli.main import main
from overtensor.experiments import plots, registry
from overtensor.experiments.report import aggregate, write_report
from overtensor.experiments.runner import run_sweep

GRID_SPEC = {"name": "poly-grid", "run": "test-poly", "grid": {"group": [0, 1], "x": [1, 2, 3]}, "seeds": 3,
             "fixed": {"fail_at": 3}, "success": {"metric": "value", "op": "<=", "value": 4}}
IMG_SRC = re.compile(r"<img src='([^']*)'")


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "runs.sqlite"
    run_sweep(GRID_SPEC, path, scheduler="inprocess", progress=False)
    run_sweep(tests._runfns.EXPERIMENT.presets["small"], path, scheduler="inprocess", progress=False)
    return path


def test_report_is_one_self_contained_page_with_figures_tables_specs_and_versions(store, tmp_path):
    out = write_report(store, tmp_path / "report.html")
    page = out.read_text()
    srcs = IMG_SRC.findall(page)
    # poly-grid: phase diagram, success-rate curves, value curves; test-poly-exp: its own figure
    assert len(srcs) == 4
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        img = mpimg.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
        assert img.shape[0] > 100 and img.shape[1] > 100
    assert "<link" not in page and "src='http" not in page and 'src="http' not in page
    assert "run: test-poly" in page  # the spec
    assert torch.__version__ in page  # the versions
    assert "Failed runs" in page and "planned failure at x=3" in page
    assert "poly summary: mean value" in page  # the registered experiment's summary
    assert "poly_value.png" in page


def test_aggregate_averages_over_seeds_per_grid_point(store):
    from overtensor.experiments.store import ResultStore

    with ResultStore(store) as db:
        df, spec = db.dataframe("poly-grid"), db.spec("poly-grid")
    table = aggregate(df, spec)
    row = table[(table["group"] == 0) & (table["x"] == 2)].iloc[0]
    assert row["n"] == 3
    assert row["value"] == pytest.approx(4 + 1)  # x**2 + mean(seed 0, 1, 2)
    assert row["success"] == pytest.approx(1 / 3)  # values 4, 5, 6: only 4 <= 4
    assert 3 not in set(table["x"])  # failed runs are not averaged


def test_broken_figures_function_is_reported_without_losing_the_page(store, tmp_path, monkeypatch):
    def boom(df, outdir):
        raise RuntimeError("figure bug")

    broken = dataclasses.replace(tests._runfns.EXPERIMENT, figures=boom)
    monkeypatch.setitem(registry._EXPERIMENTS, "test-poly-exp", broken)
    page = write_report(store, tmp_path / "r.html").read_text()
    assert "figures failed: RuntimeError(&#x27;figure bug&#x27;)" in page
    assert len(IMG_SRC.findall(page)) == 3  # poly-grid's figures are still there


def test_success_rate_and_wilson_interval_numbers():
    df = pd.DataFrame({"a": [1, 1, 1, 1, 2, 2], "b": [0] * 6, "success": [1, 1, 0, 0, 1, 1]})
    rates = plots.success_rate(df, ["a", "b"])
    assert rates["rate"].tolist() == [0.5, 1.0]
    assert rates["n"].tolist() == [4, 2]
    lo, hi = plots.wilson_interval([0, 2, 4], [4, 4, 4])
    np.testing.assert_allclose(lo, [0.0, 0.15004, 0.51010], atol=1e-4)
    np.testing.assert_allclose(hi, [0.48990, 0.84996, 1.0], atol=1e-4)


def test_figure_helpers_write_png_and_svg_and_validate_input(tmp_path):
    df = pd.DataFrame({"m": [1, 1, 2, 2], "d": [3, 4, 3, 4], "err": [1.0, 0.5, 0.1, 0.01],
                       "success": [0.0, 0.0, 1.0, 1.0]})
    paths = plots.phase_diagram(df, "m", "d", tmp_path / "phase")
    paths += plots.curves(df, "m", "err", tmp_path / "curves", hue="d", logy=True)
    paths += plots.staircase([0, 1, 2], [[0, 0], [1, 0], [1, 0.5]], tmp_path / "stairs",
                             target_levels=[1, 0.5])
    assert [p.suffix for p in paths] == [".png", ".svg"] * 3
    assert all(p.stat().st_size > 1000 for p in paths)
    with pytest.raises(ValueError, match="spread"):
        plots.curves(df, "m", "err", tmp_path / "x", spread="iqr")
    with pytest.raises(ValueError, match="values must have shape"):
        plots.staircase([0, 1], [[0, 1, 2]], tmp_path / "y")


def test_cli_report_export_and_missing_store(store, tmp_path, capsys):
    assert main(["report", str(store), "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").exists()
    assert main(["results", "export", str(store), "--format", "csv", "-o", str(tmp_path / "r.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "r.csv")) == 18 + 12
    assert main(["report", str(tmp_path / "none.sqlite")]) == 4  # a missing file: exit code 4
    assert "does not exist" in capsys.readouterr().err


def test_demo_runs_the_registered_experiments_and_names_the_missing_ones(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(exp_cli, "DEMO_EXPERIMENTS", ("test-poly-exp", "no-such-experiment"))
    report = tmp_path / "demo.html"
    rc = main(["demo", "--inprocess", "--no-progress", "--store", str(tmp_path / "demo.sqlite"),
               "-o", str(report)])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "'no-such-experiment' is not registered" in err
    assert "test-poly-exp: 12 runs, 0 already done, 12 done, 0 failed" in out
    assert f"report: {report.resolve()}" in out
    # resumable: the second demo does no work
    assert main(["demo", "--inprocess", "--no-progress", "--store", str(tmp_path / "demo.sqlite"),
                 "-o", str(report)]) == 0
    assert "12 already done, 0 done" in capsys.readouterr().out


def _poly_claims(df):
    mean = df["value"].mean()
    return [registry.Claim("Doe: Squares (2020)", "https://example.org/squares",
                           "The mean value stays below 10.", "supported" if mean < 10 else "not supported",
                           f"mean over {len(df)} runs: {mean:.2f} < 10", "poly_value"),
            registry.Claim("Doe: Squares (2020)", "", "Nothing else.", "inconclusive", "too few seeds")]


@pytest.fixture
def with_claims(monkeypatch):
    exp = dataclasses.replace(tests._runfns.EXPERIMENT, claims=_poly_claims,
                              captions={"poly_value": "Value against x: median over seeds, quartile band."})
    monkeypatch.setitem(registry._EXPERIMENTS, "test-poly-exp", exp)


def test_report_states_each_claim_with_paper_verdict_reason_and_captioned_figure(store, tmp_path,
                                                                                 with_claims):
    page = write_report(store, tmp_path / "report.html").read_text()
    assert page.count("<section class='claim verdict-supported'>") == 1
    assert page.count("<section class='claim verdict-inconclusive'>") == 1
    assert "<a href='https://example.org/squares'>Doe: Squares (2020)</a>" in page
    assert "The mean value stays below 10." in page and "mean over 12 runs: 5.17 &lt; 10" in page
    # the claim's figure sits in the claim's section, with its caption
    claim = page[page.index("<section class='claim verdict-supported'>"):]
    claim = claim[:claim.index("</section>")]
    assert "<figcaption>Value against x: median over seeds, quartile band." in claim
    assert "What held" in page and page.index("What held") < page.index("<h2 id='poly-grid'>")
    # generic figures get captions that say what they show, not file names
    assert "Success rate (value &lt;= 4) over group and x" in page


def test_sections_follow_the_readme_order():
    from overtensor.experiments.report import ordered_names

    names = ["b-own", "vs-classical", "a-own", "deflation", "lazy-lower-bound", "width-vs-dimension"]
    assert ordered_names(names) == ["lazy-lower-bound", "width-vs-dimension", "deflation", "vs-classical",
                                    "a-own", "b-own"]


def test_tables_keep_every_metric_and_name_the_statistic():
    from overtensor.experiments.report import MAIN_METRICS, _results_tables, aggregate_text

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": [1, 1, 1, 2, 2, 2], "seed": [0, 1, 2] * 2,
                       **{f"metric_{i}": rng.normal(size=6) for i in range(12)},
                       "ok": [True, False, True, True, True, True],
                       "sometimes": [1.0, None, None, 2.0, 4.0, None], "size": [5, 5, 5, 7, 7, 7]})
    spec = {"grid": {"x": [1, 2]}}
    table = aggregate_text(df, spec)
    assert list(table.columns) == ["x", "n", *[f"metric_{i}" for i in range(12)], "ok", "sometimes",
                                   "size"]  # constant per grid point: last, without a spread
    assert table["size"].tolist() == ["5", "7"]
    assert table["ok"].tolist() == ["2/3", "3/3"]
    assert table["sometimes"].tolist() == ["1 [1]", "3 ± 1.4 [2]"]
    m = df.loc[df["x"] == 1, "metric_0"]
    assert table.loc[0, "metric_0"] == f"{m.mean():.4g} ± {m.std(ddof=1):.2g}"
    page = _results_tables(df, spec)
    assert "mean ± sd" in page and "3 seeds" in page
    main_part, full = page.split("<details", 1)
    assert main_part.count("<th>") == 2 + MAIN_METRICS
    assert full.count("<th>") == 2 + 15 and "All 15 metrics" in full


def test_width_statistic_says_what_it_is_below_ten_seeds():
    from overtensor.experiments.width_vs_dimension import claims, statistic_name

    assert statistic_name(3) == "2 of 3 seeds"
    assert statistic_name(9) == "8 of 9 seeds"
    assert statistic_name(10) == "≥ 90 % of seeds"
    rows = [{"regime": reg, "dim": d, "seed": s, "order": 3, "rank": 3, "eps": 0.01, "skipped": False,
             "lazy_threshold_width": -(-(d + 2) * (d + 1) * d // 6 // d),
             "min_width": (-(-(d + 2) * (d + 1) // 6)) if reg == "lazy" else 3 + s}
            for reg in ("lazy", "beyond-lazy") for d in (10, 20, 40) for s in range(3)]
    (claim,) = claims(pd.DataFrame(rows))
    assert claim.verdict == "supported"
    assert "the 2nd smallest: the width by which 2 of 3 seeds reached ε" in claim.reason
    assert "fewer than 10 seeds: not a 90 % width" in claim.reason


# -- headless Chromium ---------------------------------------------------------------------------

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--virtual-time-budget=10000")
# Marks the load state of every <img> in a <pre> once the page has loaded; --dump-dom prints it.
PROBE = """<script>
window.addEventListener('load', function () {
  var state = Array.prototype.map.call(document.images, function (im) {
    return {alt: im.alt, complete: im.complete, width: im.naturalWidth, height: im.naturalHeight};
  });
  var pre = document.createElement('pre');
  pre.id = 'img-status';
  pre.textContent = JSON.stringify(state);
  document.body.appendChild(pre);
});
</script>"""


# Lists, once the page has loaded, every verdict element and, per table, its header cells with
# their rendered width and whether the table fits its box or the box scrolls.
TABLE_PROBE = """<script>
window.addEventListener('load', function () {
  document.querySelectorAll('details').forEach(function (d) { d.open = true; });
  var verdicts = Array.prototype.map.call(document.querySelectorAll('p.verdict .verdict-label'),
                                          function (el) { return el.textContent; });
  var tables = Array.prototype.map.call(document.querySelectorAll('div.table-wrap'), function (box) {
    var table = box.querySelector('table');
    var ths = Array.prototype.map.call(table.querySelectorAll('tr:first-child th'), function (th) {
      var r = th.getBoundingClientRect();
      return {text: th.textContent, width: r.width};
    });
    return {ths: ths, fits: table.scrollWidth <= box.clientWidth + 1,
            scrolls: getComputedStyle(box).overflowX === 'auto'};
  });
  var pre = document.createElement('pre');
  pre.id = 'layout-status';
  pre.textContent = JSON.stringify({verdicts: verdicts, tables: tables});
  document.body.appendChild(pre);
});
</script>"""


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.browser
def test_report_opens_in_headless_chromium_with_every_figure_loaded(store, tmp_path):
    browser = find_browser()
    if browser is None:
        pytest.skip(f"no headless browser found (looked for {', '.join(BROWSERS)} on PATH); "
                    "install Debian's 'chromium' package (.ci/run does) to run this test")
    page = write_report(store, tmp_path / "report.html").read_text()
    n_img = len(IMG_SRC.findall(page))
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    profile = tmp_path / "chrome-profile"
    proc = subprocess.run([browser, *CHROME_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                           probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r'<pre id="img-status">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"page did not load or the probe did not run; stderr: {proc.stderr[-2000:]}"
    state = json.loads(match.group(1).replace("&quot;", '"'))
    assert len(state) == n_img == 4
    for img in state:
        assert img["complete"] and img["width"] > 100 and img["height"] > 100, img


def test_cli_runs_a_spec_file_and_writes_generic_figures(tmp_path, capsys):
    spec = tmp_path / "grid.yaml"
    spec.write_text("name: cli-grid\nrun: test-poly\ngrid: {group: [0, 1], x: [1, 2]}\nseeds: 2\n"
                    "success: {metric: value, op: '<=', value: 4}\n")
    rc = main(["experiment", "run", str(spec), "--inprocess", "--no-progress", "--store",
               str(tmp_path / "s.sqlite"), "--outdir", str(tmp_path / "figs")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "cli-grid: 8 runs, 0 already done, 8 done, 0 failed" in out
    assert (tmp_path / "figs" / "phase_diagram.png").exists()
    assert (tmp_path / "figs" / "phase_diagram.svg").exists()


def test_cli_lists_builtin_experiments_with_run_counts(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # one line per experiment
    assert main(["experiment", "list"]) == 0
    out = capsys.readouterr().out
    assert "vs-classical" in out and "small (48)" in out


@pytest.mark.browser
def test_report_in_headless_chromium_shows_verdicts_and_cuts_no_table_column(store, tmp_path, with_claims):
    browser = find_browser()
    if browser is None:
        pytest.skip(f"no headless browser found (looked for {', '.join(BROWSERS)} on PATH); "
                    "install Debian's 'chromium' package (.ci/run does) to run this test")
    page = write_report(store, tmp_path / "report.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", TABLE_PROBE + "</body>"))
    proc = subprocess.run([browser, *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                           "--window-size=800,900", "--dump-dom", probe.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r'<pre id="layout-status">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"page did not load or the probe did not run; stderr: {proc.stderr[-2000:]}"
    state = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert state["verdicts"] == ["supported", "inconclusive"]
    n_tables = page.count("<div class='table-wrap'>")
    assert len(state["tables"]) == n_tables >= 3
    for table in state["tables"]:
        assert table["ths"] and all(th["width"] > 0 for th in table["ths"]), table
        assert table["fits"] or table["scrolls"], table  # a wide table scrolls; nothing is cut


def _seed_spread_claims(df):
    per_seed = df.groupby("seed")["value"].mean()
    spread = registry.mean_sd(per_seed.mean(), per_seed.std(), ".2f", ".4f")
    return [registry.Claim("Doe: Squares (2020)", "", "The mean value stays below 10.",
                           "supported" if per_seed.mean() < 10 else "not supported",
                           f"mean over seeds {spread}",
                           "poly_value")]


def test_verdicts_of_the_tiny_preset_are_marked_as_a_smoke_test(tmp_path, monkeypatch):
    presets = dict(tests._runfns.EXPERIMENT.presets)
    presets["tiny"] = {**presets["small"], "seeds": 1}
    exp = dataclasses.replace(tests._runfns.EXPERIMENT, claims=_seed_spread_claims, presets=presets)
    monkeypatch.setitem(registry._EXPERIMENTS, "test-poly-exp", exp)
    path = tmp_path / "runs.sqlite"
    run_sweep(presets["tiny"], path, scheduler="inprocess", progress=False)
    page = write_report(path, tmp_path / "report.html").read_text()
    overview = page[page.index("What held"):page.index("<h2 id='test-poly-exp'>")]
    assert "(tiny preset: a smoke test, not evidence)" in overview
    claim = page[page.index("<section class='claim"):]
    claim = claim[:claim.index("</section>")]
    assert "tiny preset: a smoke test, not evidence" in claim
    assert "(n = 1)" in claim and "±" not in claim  # no spread over a single seed

    # two seeds of the small preset: evidence, with its spread
    path2 = tmp_path / "runs2.sqlite"
    run_sweep(presets["small"], path2, scheduler="inprocess", progress=False)
    page = write_report(path2, tmp_path / "report2.html").read_text()
    assert "not evidence" not in page and "± " in page
