"""`jobrunner ui`: a small read-only web page over the job store (starlette, served by uvicorn).

    /                       the runs (id, experiment, state, nodes, attempts, duration), live
    /runs/<id>              one run: state history, nodes, logs per node and rank, metrics as
                            charts (uPlot, shipped in `static/`: no CDN), outputs to download
    /runs/<id>/outputs/<p>  one output file
    /api/runs, /api/runs/<id>, /api/runs/<id>/logs, /api/runs/<id>/metrics   the JSON the pages poll

Nothing here writes to the store. It binds to loopback unless told otherwise: the store's
runs, logs and outputs are not for the network at large.

Failure modes: an unknown run is a 404 page; a tracking server that does not answer leaves
the metrics empty with the reason in the page, the rest still shows.
"""

from __future__ import annotations

from jobrunner.store.client import Store
from jobrunner.ui.app import build_app

__all__ = ["build_app", "serve"]


def serve(store: Store, *, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the page until Ctrl-C (uvicorn)."""
    import uvicorn

    uvicorn.run(build_app(store), host=host, port=port, log_level="warning")
