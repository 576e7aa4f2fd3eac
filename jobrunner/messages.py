"""The pool queue's messages: JSON text, one of

- `{"kind": "job", "id", "experiment", "attempt"}`: run this attempt of a run;
- `{"kind": "join", "id", "attempt"}`: a multi-node job waits on the gang board for nodes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from jobrunner.status import RunRef


@dataclass(frozen=True)
class Message:
    kind: str
    ref: RunRef
    attempt: int


def job_message(ref: RunRef, attempt: int) -> str:
    return json.dumps({"kind": "job", "id": ref.id, "experiment": ref.experiment, "attempt": attempt})


def join_message(job_id: str, attempt: int) -> str:
    return json.dumps({"kind": "join", "id": job_id, "attempt": attempt})


def parse_message(content: bytes) -> Message | None:
    """The message, or None for text that is not one of ours."""
    try:
        body = json.loads(content.decode())
        ref = RunRef(experiment=str(body.get("experiment", "")), id=str(body["id"]))
        kind = str(body["kind"])
        return Message(kind, ref, int(body["attempt"])) if kind in ("job", "join") else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
