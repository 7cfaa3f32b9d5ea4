"""One self-contained HTML report of a result store.

For every experiment in the store: its figures (the registered experiment's ``figures(df, outdir)``
when there is one, else generic ones from the spec's grid and success criterion), embedded as
base64 PNG so that the page is a single file; its summary; a table of the results aggregated over
seeds; the failed runs with their errors; the spec; and the software versions and devices.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import pandas as pd

from overtensor._io import atomic_write
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
figcaption{font-size:0.8em;color:#555} .failed{color:#a00}
"""


def write_report(store: ResultStore | str | Path, out: str | Path, *, figures_dir: str | Path | None = None,
                 title: str = "overtensor experiments") -> Path:
    """Write the HTML report of ``store`` to ``out``; returns its path.

    ``figures_dir`` keeps the PNG/SVG files (default: ``<out stem>_figures`` next to the report), one
    folder per experiment named by :func:`overtensor.experiments.names.slug` (never a path from the
    store); the report itself does not depend on them. A store given as a path is opened read-only.
    """
    own = not isinstance(store, ResultStore)
    db = ResultStore(store, readonly=True) if own else store
    out = Path(out)
    figdir = Path(figures_dir) if figures_dir is not None else out.with_name(out.stem + "_figures")
    try:
        names = db.experiments()
        # A store may come from someone else: its names become file names only through slug().
        sections = [_section(db, name, figdir / slug(name)) for name in names]
        versions = _versions(db)
    finally:
        if own:
            db.close()
    toc = "".join(f"<li><a href='#{html.escape(n)}'>{html.escape(n)}</a></li>" for n in names)
    body = (f"<ul>{toc}</ul>\n" + "\n".join(sections)) if sections else "<p>The store holds no runs.</p>"
    page = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
            f"<p>Store: <code>{html.escape(str(db.path))}</code></p>\n{versions}\n{body}\n</body></html>\n")
    return atomic_write(out, lambda tmp: tmp.write_text(page, encoding="utf-8"))


def experiment_figures(name: str, df: pd.DataFrame, spec: dict[str, Any] | None, outdir: Path) -> list[Path]:
    """Figures of one experiment: the registered ``figures`` function, else :func:`default_figures`."""
    from overtensor.experiments.registry import get_experiment

    outdir.mkdir(parents=True, exist_ok=True)
    try:
        exp = get_experiment(name)
    except ValueError:
        exp = None
    if exp is not None and exp.figures is not None:
        return [Path(p) for p in exp.figures(df, outdir)]
    return default_figures(df, spec or {}, outdir)


def default_figures(df: pd.DataFrame, spec: dict[str, Any], outdir: Path) -> list[Path]:
    """Generic figures from a spec: phase diagram over two numeric grid parameters, curves over seeds."""
    from overtensor import plots

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


def _section(db: ResultStore, name: str, figdir: Path) -> str:
    from overtensor.experiments.registry import get_experiment

    df = db.dataframe(name)
    spec = db.spec(name)
    counts = db.counts(name)
    parts = [f"<h2 id='{html.escape(name)}'>{html.escape(name)}</h2>"]
    try:
        exp = get_experiment(name)
    except ValueError:
        exp = None
    description = (spec or {}).get("description") or (exp.description if exp else "")
    if description:
        parts.append(f"<p>{html.escape(description)}</p>")
    failed_cls = " class='failed'" if counts["failed"] else ""
    parts.append(f"<p>{counts['done']} runs done, <span{failed_cls}>{counts['failed']} failed</span>.</p>")
    try:
        figs = experiment_figures(name, df, spec, figdir) if not df.empty else []
    except Exception as exc:  # a broken figure must not lose the rest of the report
        figs = []
        parts.append(f"<p class='failed'>figures failed: {html.escape(repr(exc))}</p>")
    for path in figs:
        if path.suffix.lower() == ".png":
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(path.stem)}'>"
                         f"<figcaption>{html.escape(path.name)}</figcaption></figure>")
    if exp is not None and exp.summary is not None and not df.empty:
        try:
            parts.append(f"<h3>Summary</h3><pre>{html.escape(str(exp.summary(df)))}</pre>")
        except Exception as exc:
            parts.append(f"<p class='failed'>summary failed: {html.escape(repr(exc))}</p>")
    table = aggregate(df, spec or {})
    if table is not None:
        parts.append("<h3>Results (aggregated over seeds)</h3>")
        parts.append(table.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, max_rows=200))
    failed = db.dataframe(name, status="failed")
    if not failed.empty:
        cfg_cols = [c for c in failed.columns if c not in META_COLUMNS]
        shown = failed[cfg_cols].copy()
        shown["error"] = failed["error"].map(_last_line)
        parts.append("<h3>Failed runs</h3>")
        parts.append(shown.head(50).to_html(index=False, border=0))
    if spec is not None:
        import yaml

        parts.append(f"<h3>Spec</h3><pre>{html.escape(yaml.safe_dump(spec, sort_keys=False))}</pre>")
    return "\n".join(parts)


def aggregate(df: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame | None:
    """Mean of the numeric metrics per grid point (over seeds), with the number of runs ``n``."""
    if df.empty:
        return None
    keys = [k for k in (spec.get("grid") or {}) if k in df.columns]
    config_keys = set(spec.get("fixed") or {}) | set(keys) | {"seed"}
    wanted = spec.get("metrics") or [c for c in df.columns if c not in config_keys and c not in META_COLUMNS]
    if "success" in df.columns and "success" not in wanted:
        wanted = ["success", *wanted]
    metrics = [c for c in wanted if c in df.columns and c not in keys
               and (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]))][:8]
    if not metrics:
        return None
    data = df[keys + metrics].copy()
    for c in metrics:
        data[c] = data[c].astype(float)
    if not keys:
        out = data[metrics].mean().to_frame().T
        out.insert(0, "n", len(data))
        return out
    grouped = data.groupby(keys, sort=True)
    out = grouped[metrics].mean()
    out.insert(0, "n", grouped.size())
    return out.reset_index()


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

