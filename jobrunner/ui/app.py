"""The routes of `jobrunner ui` (see the package docstring): JSON views of the store, and the
two pages that poll them."""

from __future__ import annotations

import mimetypes
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jobrunner.errors import NotFoundError, TrainstackError
from jobrunner.node.logship import LogReader
from jobrunner.store.client import RUNS, Store
from jobrunner.store.status import RunStatus, find_run, list_runs, read_status, utc_now
from jobrunner.sweep.report import sweep_report
from jobrunner.tracking.metrics_view import run_metrics
from jobrunner.ui.pages import not_found_page, run_page, runs_page

STATIC = Path(__file__).parent / "static"
LOG_TAIL_BYTES = 64 * 1024  # per stream: a page shows the end of a long log


def _seconds(start: str | None, end: str | None) -> float | None:
    if start is None:
        return None

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return max((parse(end or utc_now()) - parse(start)).total_seconds(), 0.0)


def run_row(s: RunStatus) -> dict[str, Any]:
    """What the run list shows of one run."""
    return {
        "id": s.id,
        "experiment": s.experiment,
        "name": s.display_name,
        "state": s.state.value,
        "nodes": s.instance_count,
        "attempts": s.attempt,
        "submitted_at": s.submitted_at,
        "duration_s": _seconds(s.started_at, s.finished_at),
        "live": not s.state.terminal,
        "kind": s.kind,
        "parent": s.parent,
    }


def run_detail(store: Store, s: RunStatus) -> dict[str, Any]:
    """One run: its row, state history, nodes and output files."""
    prefix = s.ref.blob("outputs/")
    blobs = [b for b in store.list(RUNS, prefix) if b.name != prefix]
    outputs = [{"path": b.name.removeprefix(prefix), "size": b.size} for b in blobs]
    return {
        **run_row(s),
        "reason": s.reason,
        "exit_code": s.exit_code,
        "transitions": [t.model_dump(mode="json") for t in s.transitions],
        "nodes_detail": [n.model_dump(mode="json") for n in s.nodes],
        "outputs": outputs,
        "sweep": _sweep(store, s),
    }


def _sweep(store: Store, s: RunStatus) -> dict[str, Any] | None:
    """A sweep's trials and best, and its parameters in the file's order (for the plots)."""
    report = sweep_report(store, s)
    return None if report is None else {**report.as_json(), "parameters": list(report.parameters)}


def run_logs(store: Store, s: RunStatus) -> dict[str, str]:
    """stream (node and rank) -> the end of its text, for the run's latest attempt."""
    text: dict[str, str] = {}
    for name, chunk in LogReader(store, s.ref.logs_prefix(s.attempt)).read_new():
        text[name] = (text.get(name, "") + chunk)[-LOG_TAIL_BYTES:]
    return dict(sorted(text.items()))


def build_app(store: Store) -> Starlette:
    """The ASGI app over `store`; every handler reads, none writes."""

    def status_of(run_id: str) -> RunStatus:
        return read_status(store, find_run(store, run_id))[0]

    async def api_runs(_: Request) -> JSONResponse:
        runs = await run_in_threadpool(list_runs, store)
        return JSONResponse([run_row(r) for r in runs])

    async def api_run(request: Request) -> JSONResponse:
        s = await run_in_threadpool(status_of, request.path_params["run_id"])
        return JSONResponse(await run_in_threadpool(run_detail, store, s))

    async def api_logs(request: Request) -> JSONResponse:
        s = await run_in_threadpool(status_of, request.path_params["run_id"])
        return JSONResponse(await run_in_threadpool(run_logs, store, s))

    async def api_metrics(request: Request) -> JSONResponse:
        run_id = request.path_params["run_id"]

        def read() -> dict[str, Any]:
            try:
                metrics = run_metrics(store, run_id)
                if metrics is None:
                    return {"run": run_id, "params": {}, "metrics": {}, "note": "not tracked"}
                return metrics.model_dump(mode="json")
            except NotFoundError:
                raise
            except TrainstackError as exc:
                return {"run": run_id, "params": {}, "metrics": {}, "note": str(exc)}

        return JSONResponse(await run_in_threadpool(read))

    async def index(_: Request) -> HTMLResponse:
        runs = await run_in_threadpool(list_runs, store)
        return HTMLResponse(runs_page([run_row(r) for r in runs]))

    async def one_run(request: Request) -> HTMLResponse:
        s = await run_in_threadpool(status_of, request.path_params["run_id"])
        return HTMLResponse(run_page(run_row(s)))

    async def output_file(request: Request) -> Response:
        s = await run_in_threadpool(status_of, request.path_params["run_id"])
        path = request.path_params["path"]
        if ".." in path.split("/"):
            return HTMLResponse(not_found_page(path), status_code=404)
        data, _ = await run_in_threadpool(store.get, RUNS, s.ref.blob(f"outputs/{path}"))
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        name = path.rsplit("/", 1)[-1]
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(data, media_type=kind, headers=headers)

    async def missing(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(exc)}, status_code=404)
        return HTMLResponse(not_found_page(str(exc)), status_code=404)

    routes = [
        Route("/", index),
        Route("/runs/{run_id}", one_run),
        Route("/runs/{run_id}/outputs/{path:path}", output_file),
        Route("/api/runs", api_runs),
        Route("/api/runs/{run_id}", api_run),
        Route("/api/runs/{run_id}/logs", api_logs),
        Route("/api/runs/{run_id}/metrics", api_metrics),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={NotFoundError: missing})
