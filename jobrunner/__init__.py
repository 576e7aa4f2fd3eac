"""The node agent and its tools: job files, the job store, launch plans and the agent loop.

Installable alone (no pulumi): it is what the GPU pool's VM image carries.
"""

from jobrunner.client import Client

__all__ = ["Client"]
