"""The report page: one self-contained HTML document (inline CSS, plots as base64 PNG).

A Content-Security-Policy forbids every network load, so the page cannot depend on one. All text
that comes from the store (summary values, attributes, reasons) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import json
import math

import numpy as np

from distdataeval.report.data import DuplicateGroups, ReportData

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
CSS = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 1.8em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img.plot { max-width: 100%; border: 1px solid #eee; }
p.not-computed { color: #8a4b00; background: #fff4e0; padding: 0.4em 0.6em; }
.note { color: #555; font-size: 0.85em; }
"""

SECTIONS = (
    ("summary", "Run summary"),
    ("cluster-sizes", "Cluster size distribution"),
    ("outlier-scores", "Outlier scores"),
    ("nn-distances", "Nearest-neighbour distances"),
    ("projection", "2-D projection of a sample"),
    ("condensed-tree", "Condensed tree of the cluster hierarchy"),
    ("duplicates", "Largest duplicate groups"),
    ("outliers", "Strongest outliers"),
)


def esc(value) -> str:
    """HTML-escape ``str(value)`` (quotes included)."""
    return html.escape(str(value), quote=True)


def fmt(value) -> str:
    """Numbers as the report prints them: ints plainly, floats with 6 significant digits."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}" if math.isfinite(value) else str(float(value))
    return str(value)


def _flatten(tree, prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and value:
                rows.extend(_flatten(value, name))
            else:
                rows.append((name, value))
    return rows


def _cell(value) -> str:
    if isinstance(value, (list, dict)):
        text = json.dumps(value)
        return esc(text if len(text) <= 200 else text[:197] + "...")
    return esc(fmt(value))


def _table(header: list[str], rows: list[list[str]], table_id: str, numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f'<table id="{esc(table_id)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _not_computed(reason: str) -> str:
    return f'<p class="not-computed">Not computed: {esc(reason)}.</p>'


def _img(plot_id: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="plot" id="plot-{esc(plot_id)}" alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def _figures(data: ReportData) -> list[tuple[str, object]]:
    """Headline figures computed from the arrays themselves."""
    out: list[tuple[str, object]] = [("rows", data.n if data.n is not None else "unknown")]
    if data.sizes is not None:
        out.append(("clusters", int(data.sizes.counts.shape[0])))
        if data.sizes.counts.size:
            out.append(("largest cluster", int(data.sizes.counts.max())))
            out.append(("smallest cluster", int(data.sizes.counts.min())))
        out.append(("rows unassigned (-1)", data.sizes.n_unassigned))
        if data.sizes.n_noise is not None:
            out.append(("HDBSCAN noise rows", data.sizes.n_noise))
    for groups in (data.exact_duplicates, data.near_duplicates):
        if groups is not None:
            out.append((f"{groups.kind} duplicate groups", groups.n_groups))
            out.append((f"rows in {groups.kind} duplicate groups", groups.n_rows))
    if data.outliers is not None and data.outliers.n_flagged is not None:
        out.append(("flagged outliers", data.outliers.n_flagged))
    return out


def _summary_section(data: ReportData) -> str:
    parts = [_table(["figure", "value"], [[esc(k), esc(fmt(v))] for k, v in _figures(data)], "figures", {1})]
    if data.summary is None:
        parts.append(_not_computed("summary.json is absent from the store"))
    else:
        rows = [[esc(k), _cell(v)] for k, v in _flatten(data.summary)]
        parts.append('<p class="note">From summary.json:</p>')
        parts.append(_table(["key", "value"], rows, "summary-json"))
    return "".join(parts)


def _duplicates_table(groups: DuplicateGroups) -> str:
    rows = []
    for gid, size, members in zip(groups.group_ids, groups.sizes, groups.members, strict=True):
        listed = ", ".join(str(int(m)) for m in members)
        if size > members.shape[0]:
            listed += f", ... ({int(size) - members.shape[0]} more)"
        rows.append([esc(int(gid)), esc(int(size)), esc(listed)])
    caption = (
        f'<p class="note">{esc(groups.kind.capitalize())} duplicates: {groups.n_groups} groups holding '
        f"{groups.n_rows} rows; the {len(rows)} largest:</p>"
    )
    return caption + _table(["group", "rows", "members (row numbers)"], rows, f"table-{groups.kind}-duplicates", {0, 1})


def _outliers_section(data: ReportData) -> str:
    out = data.outliers
    if out is None:
        return _not_computed(data.missing.get("outliers", "no outlier scores"))
    note = []
    if out.n_flagged is not None:
        note.append(f"{out.n_flagged} rows flagged; the strongest by score")
    else:
        note.append("no flags stored; the highest scores")
    if out.threshold_rule is not None:
        note.append(f"rule: {out.threshold_rule}")
    header = ["row", "score"]
    columns = [out.rows, out.scores]
    if out.clusters is not None:
        header.append("cluster")
        columns.append(out.clusters)
    if out.nn_distances is not None:
        header.append("NN distance")
        columns.append(out.nn_distances)
    rows = [[esc(fmt(col[i])) for col in columns] for i in range(out.rows.shape[0])]
    table = _table(header, rows, "table-outliers", set(range(len(header))))
    return f'<p class="note">{esc("; ".join(note))}.</p>' + (table if rows else "<p>No flagged outliers.</p>")


def render_page(data: ReportData, plots: dict[str, bytes]) -> str:
    """The whole HTML document.

    Parameters
    ----------
    data : ReportData
    plots : dict of str to bytes
        PNG images keyed by section id ("cluster-sizes", "outlier-scores", "nn-distances",
        "projection", "condensed-tree"); a missing key means the section was not computed.
    """
    reasons = {
        "cluster-sizes": data.missing.get("sizes"),
        "outlier-scores": data.missing.get("outlier_hist"),
        "nn-distances": data.missing.get("nn_hist"),
        "projection": data.missing.get("projection"),
        "condensed-tree": data.missing.get("tree"),
    }
    body = {"summary": _summary_section(data), "outliers": _outliers_section(data)}
    for key, reason in reasons.items():
        body[key] = _img(key, plots[key], dict(SECTIONS)[key]) if key in plots else _not_computed(reason or "no data")
    if data.projection is not None and "projection" in plots:
        body["projection"] += (
            f'<p class="note">{data.projection.rows.shape[0]} of {data.projection.n_total} rows, drawn with a fixed '
            "seed; principal axes from an SVD of the centred sample.</p>"
        )
    if data.tree is not None and "condensed-tree" in plots:
        body["condensed-tree"] += (
            f'<p class="note">Rebuilt from the stored linkage with min_cluster_size = '
            f"{data.tree.min_cluster_size} ({esc(data.tree.mcs_origin)}); orange boxes are the "
            f"{data.tree.selected.shape[0]} clusters selected by excess of mass.</p>"
        )
    dup_parts = []
    for kind, groups in (("exact", data.exact_duplicates), ("near", data.near_duplicates)):
        if groups is None:
            dup_parts.append(_not_computed(data.missing.get(f"{kind}_duplicates", f"no {kind} duplicates")))
        else:
            dup_parts.append(_duplicates_table(groups))
    body["duplicates"] = "".join(dup_parts)
    sections = "".join(
        f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>{body[sid]}</section>' for sid, title in SECTIONS
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>distdataeval report: {esc(data.store)}</title><style>{CSS}</style></head><body>"
        f"<h1>distdataeval report</h1><p class=\"note\">Store: {esc(data.store)}</p>"
        f"{sections}</body></html>\n"
    )
