"""The HTML of `jobrunner ui`'s pages: a first rendering from the server, brought up to date
by `static/ui.js`, which polls the JSON views and draws the metric charts (uPlot)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

COLUMNS = ("id", "experiment", "state", "nodes", "attempts", "duration", "live")


def duration(seconds: float | None) -> str:
    """`1h02m`, `3m05s`, `12s`; empty when the run has not started."""
    if seconds is None:
        return ""
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _page(title: str, body: str, script: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{escape(title)}</title>
<link rel="stylesheet" href="/static/uPlot.min.css">
<link rel="stylesheet" href="/static/ui.css">
<script src="/static/uPlot.iife.min.js"></script>
<script src="/static/ui.js"></script>
</head><body>
<header><a href="/">jobrunner</a> <span class="dim">read-only view of the job store</span></header>
<main>{body}</main>
<script>{script}</script>
</body></html>
"""


def _row(r: dict[str, Any]) -> str:
    cells = [
        f'<a href="/runs/{escape(r["id"])}">{escape(r["id"])}</a>',
        escape(r["experiment"]),
        f'<span class="state {escape(r["state"])}">{escape(r["state"])}</span>',
        str(r["nodes"]),
        str(r["attempts"]),
        duration(r["duration_s"]),
        "live" if r["live"] else "",
    ]
    return f'<tr data-run="{escape(r["id"])}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def runs_page(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    body = (
        f'<h1>Runs</h1><table id="runs"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(_row(r) for r in rows)}</tbody></table>"
        + ('<p id="empty" class="dim">no runs yet</p>' if not rows else "")
    )
    return _page("jobrunner: runs", body, "jobrunner.runs();")


def run_page(row: dict[str, Any]) -> str:
    run_id, state = escape(row["id"]), escape(row["state"])
    body = f"""<h1>{run_id} <span id="state" class="state {state}">{state}</span></h1>
<p class="dim">experiment {escape(row["experiment"])} · {row["nodes"]} node(s) · attempt {row["attempts"]}</p>
{_trials_section() if row.get("kind") == "sweep" else ""}
<section><h2>Metrics</h2><p id="params" class="dim"></p><div id="metrics"></div></section>
<section><h2>State history</h2><table id="history"><thead><tr><th>at</th><th>state</th><th>attempt</th>
<th>note</th></tr></thead><tbody></tbody></table></section>
<section><h2>Nodes</h2><table id="nodes"><thead><tr><th>rank</th><th>node</th><th>exit code</th>
<th>failure</th><th>reason</th></tr></thead><tbody></tbody></table></section>
<section><h2>Logs</h2><div id="logs"></div></section>
<section><h2>Outputs</h2><ul id="outputs"></ul></section>"""
    return _page(f"jobrunner: {row['id']}", body, f"jobrunner.run({json.dumps(row['id'])});")


def _trials_section() -> str:
    """A sweep's trials (filled and kept up to date by ui.js), and a plot of the primary metric
    against each parameter."""
    return """<section><h2>Trials</h2><p id="best" class="dim"></p>
<table id="trials"><thead><tr></tr></thead><tbody></tbody></table>
<div id="sweep-plots"></div></section>"""


def not_found_page(what: str) -> str:
    return _page("jobrunner: not found", f"<h1>Not found</h1><p>{escape(what)}</p>", "")
