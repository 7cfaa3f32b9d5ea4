"""One self-contained HTML report of a result store: what held, and the numbers behind it.

The page opens with the verdict of every claim (supported / not supported / inconclusive), then
one section per experiment, in the order of the README (:data:`REPORT_ORDER`, others after): for
each claim the paper (linked), the claim in one sentence, the verdict with the numbers that decide
it and its figure; the other figures with captions saying what they show; a table of every metric
per grid point as ``mean ± sd`` over the seeds (``k/n`` for 0/1 metrics), the first
:data:`MAIN_METRICS` shown and all of them in a collapsible full table; the failed runs; the spec;
and the software versions and devices. Figures are embedded as base64 PNG, so the page is a single
file. Verdicts of an experiment run with its ``tiny`` preset, or with a single seed, are marked as a
smoke test, not evidence (:func:`smoke_note`); experiments write a spread over one seed as
``(n = 1)`` (:func:`overtensor.experiments.registry.mean_sd`).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from overtensor._io import atomic_write, check_not_link
from overtensor.experiments.names import slug
from overtensor.experiments.store import META_COLUMNS, ResultStore

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222} h1{border-bottom:2px solid #444} h2{margin-top:2em;border-bottom:1px solid #bbb}
table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0} td,th{border:1px solid #ccc;padding:2px 6px;
text-align:right} th{background:#f2f2f2}
pre{background:#f7f7f7;padding:0.6em;overflow-x:auto;font-size:0.85em}
figure{display:inline-block;margin:0.5em;vertical-align:top;max-width:100%}
figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:0.85em;color:#333;max-width:60em} .failed{color:#a00}
.table-wrap{overflow-x:auto;max-width:100%} td.label,th.label{text-align:left}
section.claim{border-left:4px solid #999;padding:0.2em 1em;margin:1.2em 0;background:#fafafa}
section.claim.verdict-supported{border-color:#2a7d2a} section.claim.verdict-not-supported{border-color:#b22}
section.claim.verdict-inconclusive{border-color:#c80}
.verdict-label{font-weight:bold;padding:1px 6px;border-radius:3px;color:#fff;background:#777}
.smoke{color:#b22;font-style:italic}
.verdict-supported .verdict-label{background:#2a7d2a} .verdict-not-supported .verdict-label{background:#b22}
.verdict-inconclusive .verdict-label{background:#c80}
details{margin:0.5em 0} summary{cursor:pointer;color:#225}
"""

#: Section order of the report: the order of the README (other experiments follow, sorted).
REPORT_ORDER = ("lazy-lower-bound", "width-vs-dimension", "deflation", "vs-classical")
#: Metrics of the main table (all of them are in the collapsible full table).
MAIN_METRICS = 8


@dataclass
class GroupReport:
    """What the report found for one group of a store (one experiment run with one preset or spec).

    Attributes
    ----------
    group : str
        The group's name in the store (``deflation``, ``deflation.tiny``, a spec file's name).
    experiment : str
        The experiment it belongs to (the stored spec's ``name``).
    preset : str or None
        The built-in preset whose spec the group's stored spec equals (None: a spec of its own).
    claims : list of Claim
        The claims with their verdicts.
    note : str
        Why the verdicts are not evidence (:func:`smoke_note`), or empty.
    seeds : int
        Number of distinct seeds of the group's finished runs.
    figures : list of Path
        The figure files written for the group.
    """

    group: str
    experiment: str
    preset: str | None
    claims: list = field(default_factory=list)
    note: str = ""
    seeds: int = 0
    figures: list[Path] = field(default_factory=list)

    configs: int = 0
    builtin: bool = False

    @property
    def tested_on(self) -> str:
        """``"5 seeds x 12 configurations"``: what the group's verdicts rest on."""
        seeds = f"{self.seeds} seed{'s' if self.seeds != 1 else ''}"
        return f"{seeds} x {self.configs} configuration{'s' if self.configs != 1 else ''}"

    @property
    def label(self) -> str:
        """The group as the report and the terminal name it: ``deflation (preset small)``, a
        registered experiment run from a spec of its own ``deflation (own spec)``, a spec file's
        group its name."""
        if not self.builtin:
            return self.group
        kind = f"preset {self.preset}" if self.preset else "own spec"
        return f"{self.group} ({kind})"


@dataclass
class Report:
    """A written report: its path and what it found per group (for the terminal's verdict lines)."""

    path: Path
    groups: list[GroupReport]

    def verdict_lines(self) -> list[str]:
        """One line per claim, ``VERDICT  group (preset P): statement -- deciding numbers [n seeds]``,
        then ``report: PATH``; the smoke-test caveat follows the claims of a group it applies to."""
        return [*verdict_lines(self.groups), f"report: {self.path.resolve()}"]


def verdict_lines(groups: list[GroupReport]) -> list[str]:
    """The terminal's summary of ``groups``: one line per claim (see :meth:`Report.verdict_lines`)."""
    lines = []
    for g in groups:
        for claim in g.claims:
            lines.append(f"{claim.verdict.upper():<13}  {g.label}: {claim.statement} -- {claim.reason} "
                         f"[{g.tested_on}]")
        if g.claims and g.note:
            lines.append(f"note: the verdicts of {g.label} are not evidence ({g.note}); "
                         "run a larger preset")
    return lines


def write_report(store: ResultStore | str | Path, out: str | Path, *, figures_dir: str | Path | None = None,
                 title: str = "overtensor experiments") -> Path:
    """Write the HTML report of ``store`` to ``out``; returns its path.

    ``figures_dir`` keeps the PNG/SVG files (default: ``<out stem>_figures`` next to the report), one
    folder per group named by :func:`overtensor.experiments.names.slug` (never a path from the
    store); the report itself does not depend on them. A store given as a path is opened read-only.
    :func:`build_report` also returns the verdicts.
    """
    return build_report(store, out, figures_dir=figures_dir, title=title).path


def build_report(store: ResultStore | str | Path, out: str | Path, *, figures_dir: str | Path | None = None,
                 title: str = "overtensor experiments",
                 group_figures: dict[str, Path] | None = None) -> Report:
    """Write the HTML report of ``store`` to ``out`` (see :func:`write_report`) and return it with
    the claims and verdicts of each group. ``group_figures`` puts the figures of the named groups in
    the given folders instead (``experiment run --outdir``)."""
    own = not isinstance(store, ResultStore)
    db = ResultStore(store, readonly=True) if own else store
    out = Path(out)
    figdir = Path(figures_dir) if figures_dir is not None else out.with_name(out.stem + "_figures")
    check_not_link(figdir)  # never write figures through a link planted next to the report
    try:
        names = ordered_groups(db)
        # A store may come from someone else: its names become file names only through slug().
        built = [_section(db, name, (group_figures or {}).get(name, figdir / slug(name))) for name in names]
        versions = _versions(db)
    finally:
        if own:
            db.close()
    sections = [text for text, _ in built]
    groups = [g for _, g in built]
    verdicts = _verdict_overview(groups)
    toc = "".join(f"<li><a href='#{html.escape(g.group)}'>{html.escape(g.label)}</a></li>" for g in groups)
    body = (f"{verdicts}<ul>{toc}</ul>\n" + "\n".join(sections)) if sections \
        else "<p>The store holds no runs.</p>"
    page = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
            f"<p>Store: <code>{html.escape(str(db.path))}</code></p>\n{versions}\n{body}\n</body></html>\n")
    path = atomic_write(out, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return Report(path, groups)


def ordered_groups(db: ResultStore) -> list[str]:
    """The groups of ``db`` in :data:`REPORT_ORDER` of their experiment (the README's order), the
    others after them, sorted; the groups of one experiment sorted by name."""
    def experiment(group: str) -> str:
        try:
            return str((db.spec(group) or {}).get("name") or group)
        except ValueError:
            return group

    rank = {n: i for i, n in enumerate(REPORT_ORDER)}
    return sorted(db.experiments(), key=lambda g: (rank.get(experiment(g), len(rank)), experiment(g), g))


def preset_of(spec: dict[str, Any] | None, exp: Any) -> str | None:
    """The preset of ``exp`` whose validated spec equals ``spec`` in what decides the runs (run
    function, fixed parameters, grid and seeds), or None (a spec of its own, or no spec)."""
    if exp is None or not spec:
        return None
    from overtensor.experiments.spec import load_spec

    for name, preset in exp.presets.items():
        try:
            ref = load_spec(preset, check_run=False)
        except ValueError:
            continue
        if all(spec.get(k) == ref.get(k) for k in ("run", "fixed", "grid", "seeds")):
            return name
    return None


def ordered_names(names: list[str]) -> list[str]:
    """``names`` in :data:`REPORT_ORDER` (the README's order), the others after them, sorted."""
    rank = {n: i for i, n in enumerate(REPORT_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def experiment_figures(name: str, df: pd.DataFrame, spec: dict[str, Any] | None, outdir: Path) -> list[Path]:
    """Figures of one experiment (``name``, or the group of a store whose spec names it): the
    registered ``figures`` function, else :func:`default_figures`."""
    check_not_link(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    exp = _experiment(str((spec or {}).get("name") or name))
    if exp is not None and exp.figures is not None:
        return [Path(p) for p in exp.figures(df, outdir)]
    return default_figures(df, spec or {}, outdir)


def default_figures(df: pd.DataFrame, spec: dict[str, Any], outdir: Path) -> list[Path]:
    """Generic figures from a spec: phase diagram over two numeric grid parameters, curves over seeds."""
    from overtensor.experiments import plots

    if df.empty:
        return []
    grid = [k for k in (spec.get("grid") or {}) if k in df.columns]
    numeric = [k for k in grid if pd.api.types.is_numeric_dtype(df[k]) and df[k].nunique() > 1]
    others = [k for k in grid if k not in numeric[:1] and df[k].nunique() <= 8]
    hue = others[0] if others else None
    success = spec.get("success")
    out: list[Path] = []
    if success and "success" in df.columns:
        df = df.assign(success=df["success"].astype(float))
        if len(numeric) >= 2:
            out += plots.phase_diagram(df, numeric[0], numeric[1], outdir / "phase_diagram",
                                       title=f"success rate ({success['metric']} {success['op']} "
                                             f"{success['value']:g})")
        if numeric:
            out += plots.curves(df, numeric[0], "success", outdir / "success_rate", hue=hue,
                                spread="wilson", ylabel="success rate")
    metric = (spec.get("metrics") or [success["metric"] if success else None])[0]
    if numeric and metric and metric in df.columns and pd.api.types.is_numeric_dtype(df[metric]):
        positive = bool((df[metric] > 0).all())
        out += plots.curves(df, numeric[0], metric, outdir / f"{slug(metric)}_curves", hue=hue, logy=positive)
    return out


def default_captions(df: pd.DataFrame, spec: dict[str, Any]) -> dict[str, str]:
    """Captions of the figures of :func:`default_figures`, keyed by file stem."""
    grid = [k for k in (spec.get("grid") or {}) if k in df.columns]
    numeric = [k for k in grid if pd.api.types.is_numeric_dtype(df[k]) and df[k].nunique() > 1]
    others = [k for k in grid if k not in numeric[:1] and df[k].nunique() <= 8]
    per = f", one line per {others[0]}" if others else ""
    success = spec.get("success")
    out = {}
    if success and numeric:
        rule = f"{success['metric']} {success['op']} {success['value']:g}"
        if len(numeric) >= 2:
            out["phase_diagram"] = (f"Success rate ({rule}) over {numeric[0]} and {numeric[1]}: the "
                                    "fraction of seeds that succeeded in each cell (runs per cell "
                                    "in the colour-bar label).")
        out["success_rate"] = (f"Success rate ({rule}) against {numeric[0]}{per}: the rate k/n over "
                               "seeds with its 95 % Wilson score interval.")
    metric = (spec.get("metrics") or [success["metric"] if success else None])[0]
    if numeric and metric:
        out[f"{metric}_curves"] = (f"{metric} against {numeric[0]}{per}: median over seeds, band "
                                   "from the 25th to the 75th percentile.")
    return out


def _experiment(name: str) -> Any:
    """The built-in experiment called ``name``, or None."""
    from overtensor.experiments.catalog import get_experiment

    try:
        return get_experiment(name)
    except ValueError:
        return None


def _figure_html(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)} <span class='file'>({html.escape(path.name)})</span>"
            "</figcaption></figure>")


def smoke_note(df: pd.DataFrame, spec: dict[str, Any] | None, exp: Any) -> str:
    """Why the verdicts of these runs are not evidence (``""`` when they may be): the stored spec
    is the experiment's ``tiny`` preset, or every run has the same seed."""
    if exp is not None and spec is not None and "tiny" in exp.presets:
        from overtensor.experiments.spec import load_spec

        try:  # the stored spec is validated: compare it with the validated preset
            tiny = load_spec(exp.presets["tiny"], check_run=False)
        except ValueError:
            tiny = {}
        if tiny and all(spec.get(k) == tiny.get(k) for k in ("run", "fixed", "grid", "seeds")):
            return "tiny preset: a smoke test, not evidence"
    if "seed" in df.columns and not df.empty and df["seed"].nunique() == 1:
        return "a single seed: a smoke test, not evidence"
    return ""


def _claim_html(claim, figure: str, note: str = "", tested_on: str = "") -> str:
    slug = claim.verdict.replace(" ", "-")
    caveat = f" <span class='smoke'>({html.escape(note)})</span>" if note else ""
    paper = (f"<a href='{html.escape(claim.url)}'>{html.escape(claim.paper)}</a>" if claim.url
             else html.escape(claim.paper))
    return (f"<section class='claim verdict-{slug}'>"
            f"<h3 class='claim-statement'>{html.escape(claim.statement)}</h3>"
            f"<p class='paper'>Source: {paper}</p>"
            f"<p class='verdict verdict-{slug}'><span class='verdict-label'>{html.escape(claim.verdict)}"
            f"</span>{caveat} {html.escape(claim.reason)}</p>"
            + (f"<p class='tested-on'>Tested on {html.escape(tested_on)} of this group.</p>"
               if tested_on else "")
            + f"{figure}</section>")


def _verdict_overview(groups: list[GroupReport]) -> str:
    rows = []
    for g in groups:
        caveat = f" <span class='smoke'>({html.escape(g.note)})</span>" if g.note else ""
        for claim in g.claims:
            slug = claim.verdict.replace(" ", "-")
            rows.append(f"<tr><td class='label'><a href='#{html.escape(g.group)}'>"
                        f"{html.escape(g.label)}</a></td>"
                        f"<td class='label'>{html.escape(claim.statement)}</td>"
                        f"<td class='label verdict-{slug}'><span class='verdict-label'>"
                        f"{html.escape(claim.verdict)}</span>{caveat}</td>"
                        f"<td class='label'>{html.escape(g.tested_on)}</td></tr>")
    if not rows:
        return ""
    return ("<h2 id='verdicts'>What held</h2><div class='table-wrap'><table class='verdicts'>"
            "<tr><th class='label'>experiment (preset)</th><th class='label'>claim</th>"
            "<th class='label'>verdict"
            f"</th><th class='label'>tested on</th></tr>{''.join(rows)}</table></div>")


def _section(db: ResultStore, name: str, figdir: Path) -> tuple[str, GroupReport]:
    df = db.dataframe(name)
    spec = db.spec(name)
    counts = db.counts(name)
    experiment = str((spec or {}).get("name") or name)
    exp = _experiment(experiment)
    group = GroupReport(name, experiment, preset_of(spec, exp), builtin=exp is not None)
    group.seeds = int(df["seed"].nunique()) if "seed" in df.columns else len(df)
    config_keys = [k for k in (spec or {}).get("grid") or {} if k in df.columns]
    group.configs = (len(df.drop_duplicates(config_keys)) if config_keys else 1) if not df.empty else 0
    parts = [f"<h2 id='{html.escape(name)}'>{html.escape(group.label)}</h2>"]
    if group.preset is None and exp is not None:
        parts.append("<p>Run with a spec of its own, not one of the experiment's presets.</p>")
    description = (spec or {}).get("description") or (exp.description if exp else "")
    if description:
        parts.append(f"<p>{html.escape(description)}</p>")
    failed_cls = " class='failed'" if counts["failed"] else ""
    parts.append(f"<p>{counts['done']} runs done, <span{failed_cls}>{counts['failed']} failed</span>.</p>")
    try:
        figs = experiment_figures(experiment, df, spec, figdir) if not df.empty else []
    except Exception as exc:  # a broken figure must not lose the rest of the report
        figs = []
        parts.append(f"<p class='failed'>figures failed: {html.escape(repr(exc))}</p>")
    pngs = {p.stem: p for p in figs if p.suffix.lower() == ".png"}
    captions = {**default_captions(df, spec or {}), **(exp.captions if exp is not None else {})}
    claims: list = []
    if exp is not None and exp.claims is not None and not df.empty:
        try:
            claims = list(exp.claims(df))
        except Exception as exc:
            parts.append(f"<p class='failed'>claims failed: {html.escape(repr(exc))}</p>")
    note = smoke_note(df, spec, exp)
    group.claims, group.note, group.figures = claims, note, figs
    if note and claims:
        parts.append(f"<p class='smoke'><b>These verdicts are not evidence</b> ({html.escape(note)}): "
                     "run a larger preset before reading them.</p>")
    shown: set[str] = set()
    for claim in claims:
        fig = ""
        if claim.figure in shown:
            fig = f"<p class='figure-ref'>Figure: {html.escape(claim.figure)}, shown above.</p>"
        elif claim.figure in pngs:
            fig = _figure_html(pngs[claim.figure], captions.get(claim.figure, claim.figure))
            shown.add(claim.figure)
        parts.append(_claim_html(claim, fig, note, group.tested_on))
    rest = [p for stem, p in pngs.items() if stem not in shown]
    if rest:
        parts.append("<h3>Figures</h3>" if claims else "")
        parts += [_figure_html(p, captions.get(p.stem, p.stem)) for p in rest]
    if exp is not None and exp.summary is not None and not df.empty:
        try:
            text = str(exp.summary(df))
            text = html.escape(text)
            parts.append(f"<details><summary>Summary printed by <code>overtensor experiment run</code>"
                         f"</summary><pre>{text}</pre></details>")
        except Exception as exc:
            parts.append(f"<p class='failed'>summary failed: {html.escape(repr(exc))}</p>")
    parts.append(_results_tables(df, spec or {}))
    failed = db.dataframe(name, status="failed")
    if not failed.empty:
        cfg_cols = [c for c in failed.columns if c not in META_COLUMNS]
        shown_failed = failed[cfg_cols].copy()
        shown_failed["error"] = failed["error"].map(_last_line)
        parts.append("<h3>Failed runs</h3>")
        parts.append(_wrap(shown_failed.head(50).to_html(index=False, border=0)))
    if spec is not None:
        import yaml

        text = html.escape(yaml.safe_dump(spec, sort_keys=False))
        parts.append(f"<details><summary>Spec</summary><pre>{text}</pre></details>")
    return "\n".join(parts), group


def _wrap(table_html: str) -> str:
    """A table in a horizontally scrollable box: a wide table is scrolled, never cut."""
    return f"<div class='table-wrap'>{table_html}</div>"


def _results_tables(df: pd.DataFrame, spec: dict[str, Any]) -> str:
    """The main table (first :data:`MAIN_METRICS` metrics) and the full one, as ``mean ± sd``."""
    table = aggregate_text(df, spec)
    if table is None:
        return ""
    keys = [k for k in (spec.get("grid") or {}) if k in table.columns]
    metrics = [c for c in table.columns if c not in keys and c != "n"]
    seeds = df["seed"].nunique() if "seed" in df.columns else len(df)
    note = (f"<p>Per grid point: <b>mean ± sd</b> over its <b>n</b> runs (one per seed; {seeds} seeds "
            "in all; sd is the sample standard deviation), <b>k/n</b> for 0/1 metrics; a metric "
            "recorded on fewer runs says on how many in brackets.</p>")
    out = ["<h3>Results per grid point</h3>", note]
    main = [*keys, "n", *metrics[:MAIN_METRICS]]
    out.append(_wrap(table[main].to_html(index=False, border=0, max_rows=200, classes="results-main")))
    if len(metrics) > MAIN_METRICS:
        out.append(f"<details class='full-table'><summary>All {len(metrics)} metrics</summary>"
                   + _wrap(table.to_html(index=False, border=0, max_rows=500, classes="results-full"))
                   + "</details>")
    return "\n".join(out)


def _metric_columns(df: pd.DataFrame, spec: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Grid keys and numeric (or 0/1) metric columns: the spec's ``metrics`` first, then the rest."""
    keys = [k for k in (spec.get("grid") or {}) if k in df.columns]
    config_keys = set(spec.get("fixed") or {}) | set(keys) | {"seed"}
    others = [c for c in df.columns if c not in config_keys and c not in META_COLUMNS]
    wanted = list(dict.fromkeys([*(spec.get("metrics") or []), *others]))
    if "success" in df.columns:
        wanted = ["success", *[c for c in wanted if c != "success"]]
    metrics = []
    for c in wanted:
        if c not in df.columns or c in keys:
            continue
        col = df[c]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            metrics.append(c)
        elif col.map(lambda v: v is None or isinstance(v, bool | int | float)).all() and col.notna().any():
            metrics.append(c)  # numbers with missing values (object column)
    return keys, metrics


def _numeric(col: pd.Series) -> pd.Series:
    return pd.to_numeric(col.map(lambda v: float(v) if isinstance(v, bool | int | float) else None),
                         errors="coerce")


def _metric_frame(df: pd.DataFrame, spec: dict[str, Any]):
    """``(grid keys, metric names, table of the keys and numeric metrics)``, or None when there is
    nothing to aggregate."""
    if df.empty:
        return None
    keys, metrics = _metric_columns(df, spec)
    if not metrics:
        return None
    data = df[keys].copy()
    for c in metrics:
        data[c] = _numeric(df[c])
    return keys, metrics, data


def aggregate(df: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame | None:
    """Mean of every numeric metric per grid point (over seeds), with the number of runs ``n``."""
    frame = _metric_frame(df, spec)
    if frame is None:
        return None
    keys, metrics, data = frame
    if not keys:
        out = data[metrics].mean().to_frame().T
        out.insert(0, "n", len(data))
        return out
    grouped = data.groupby(keys, sort=True)
    out = grouped[metrics].mean()
    out.insert(0, "n", grouped.size())
    return out.reset_index()


def aggregate_text(df: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame | None:
    """Like :func:`aggregate`, as text: ``mean ± sd`` per metric (``k/n`` for 0/1 metrics; the
    number of runs in brackets when a metric is missing on some; a plain value, listed last, for a
    metric constant within every grid point)."""
    frame = _metric_frame(df, spec)
    if frame is None:
        return None
    keys, metrics, data = frame
    binary = {c for c in metrics if data[c].dropna().isin([0.0, 1.0]).all()
              and (pd.api.types.is_bool_dtype(df[c]) or c == "success")}
    groups = [((), data)] if not keys else list(data.groupby(keys, sort=True))
    # Columns constant within every grid point (widths and sizes derived from the config) carry
    # no spread: shown as plain values, after the metrics that vary over seeds.
    constant = {c for c in metrics if c not in binary
                and all(sub[c].nunique(dropna=True) <= 1 for _, sub in groups)}
    metrics = [c for c in metrics if c not in constant] + [c for c in metrics if c in constant]
    rows = []
    for key, sub in groups:
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(keys, key, strict=True))
        row["n"] = len(sub)
        for c in metrics:
            row[c] = _stat_text(sub[c], c in binary, len(sub), c in constant)
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, "n", *metrics])


def _stat_text(values: pd.Series, binary: bool, n: int, constant: bool = False) -> str:
    v = values.dropna()
    if v.empty:
        return "–"
    if binary:
        return f"{int(v.sum())}/{len(v)}"
    text = f"{v.mean():.4g}" if len(v) == 1 or constant else f"{v.mean():.4g} ± {v.std(ddof=1):.2g}"
    return text if len(v) == n else f"{text} [{len(v)}]"


def _versions(db: ResultStore) -> str:
    seen: dict[str, set[str]] = {}
    devices: set[str] = set()
    for row in db.rows():
        for k, v in (row["versions"] or {}).items():
            seen.setdefault(k, set()).add(str(v))
        if row["device"]:
            devices.add(row["device"])
    if not seen:
        return ""
    items = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(', '.join(sorted(v)))}</td></tr>"
                    for k, v in sorted(seen.items()))
    items += f"<tr><th>devices</th><td>{html.escape(', '.join(sorted(devices)))}</td></tr>"
    return f"<h3>Software versions and devices</h3><table>{items}</table>"


def _last_line(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        return ""
    return text.strip().splitlines()[-1][:300]

