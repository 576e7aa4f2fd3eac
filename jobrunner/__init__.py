"""The node agent and its tools: job files, the job store, launch plans and the agent loop.

Installable alone (no pulumi): it is what the GPU pool's VM image carries.
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
