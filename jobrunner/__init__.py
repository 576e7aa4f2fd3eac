"""The node agent and its tools: job files, the job store, launch plans and the agent loop.

Installable alone (no pulumi): it is what the GPU pool's VM image carries. By role:

- `spec`: the job file (Azure ML CLI v2 command jobs, the `trainstack:` extension) and its checks;
- `store`: the job store (Azure Blob and Queue storage) and the documents in it;
- `scheduler`: the pool's one scheduler (lease, decision, how an attempt ends, autoscale gauges);
- `plan`: what one node runs for one attempt, planned without touching the machine;
- `node`: the execution side of an agent (the loop, an attempt, logs, outputs, evictions);
- `tracking`: MLflow tracking of job runs;
- `sweep`: hyperparameter sweeps;
- `local`: the cloud on one machine (Azurite, an MLflow server, a local pool);
- `cli` and `ui`: the `jobrunner` command and its web page;
- `client` (`Client`), `api`, `errors`, `files`, `durations`: the Python API and what all share.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobrunner.client import Client

__all__ = ["Client"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `import jobrunner.errors` need not load the Azure SDKs.
    if name == "Client":
        from jobrunner.client import Client

        return Client
    raise AttributeError(f"module 'jobrunner' has no attribute {name!r}")
