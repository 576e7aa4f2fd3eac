"""preempt: from a Spot eviction notice to SIGTERM of the job's processes, while a 1 GiB
output uploads, and until the checkpoint the job writes on SIGTERM is in the store.

A 2-agent local pool watches a fake Scheduled Events endpoint (`tests/faults/events_server.py`,
the instance metadata service's protocol on loopback). The job writes a large output file,
then waits; on SIGTERM it notes the time and writes a 16 MiB checkpoint. Once the agent's
upload of the large file is under way (counted on the wire), the bench announces `Preempt`
for the job's node. `value`: seconds from the announcement to the job's SIGTERM;
`detail.checkpoint_flushed_s`: from the announcement until the checkpoint is in the store.
The baseline is the same notice for the same job with nothing uploading (a 1 MiB output,
already in the store), in the same run.

    .venv/bin/python bench/preempt.py [--json] [--quick] [--mib N]

Goals: SIGTERM within 2 s of the notice during the upload; the checkpoint in the store
within the 30 s notice.
"""

from __future__ import annotations

import os
import time

from _common import Result, Workspace, arguments, emit, local_pool, progress, workspace, write_job

from jobrunner.client import Client
from jobrunner.errors import NotFoundError
from jobrunner.store.client import RUNS
from jobrunner.store.status import read_status
from tests.faults.events_server import ScheduledEventsServer

GOAL_STOP_S = 2.0
NOTICE_S = 30.0
CHECKPOINT = 16 << 20
JOB = """\
import os, signal, sys, time
out, marks, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])

def on_sigterm(*_):
    open(os.path.join(marks, "sigterm"), "w").write(repr(time.time()))
    with open(os.path.join(out, "final.ckpt"), "wb") as f:
        f.write(os.urandom(CHECKPOINT))
    sys.exit(143)

signal.signal(signal.SIGTERM, on_sigterm)
block = os.urandom(1 << 20)
with open(os.path.join(out, "big.bin"), "wb") as f:
    for i in range(mib):
        f.write(i.to_bytes(8, "little") + block[8:])  # every block its own content
open(os.path.join(marks, "written"), "w").close()
while True:
    time.sleep(0.05)
""".replace("CHECKPOINT", str(CHECKPOINT))


def wait(what: str, check, timeout_s: float = 300, every: float = 0.02):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(every)
    return value


def blob_size(store, name: str) -> int:  # type: ignore[no-untyped-def]
    try:
        return int(store.size(RUNS, name))
    except NotFoundError:
        return 0


def one(
    ws: Workspace, client: Client, events: ScheduledEventsServer, mib: int, tag: str, under_way_bytes: int
) -> dict[str, float]:
    """Run the job with a `mib` MiB output, announce Preempt once `under_way_bytes` of it went
    up; the timings, seconds after the announcement."""
    code, marks = ws.folder(f"code-{tag}"), ws.folder(f"marks-{tag}")
    (code / "job.py").write_text(JOB)
    job = write_job(
        ws.folder("jobs"), f"preempt-{tag}.yml",
        f"command: python job.py ${{{{outputs.model}}}} {marks} {mib}\ncode: {code}\n"
        "outputs:\n  model:\n    type: uri_folder\n",
    )  # fmt: skip
    run = client.submit(job)
    big = f"{run.ref.outputs_prefix('model')}big.bin"
    ckpt = f"{run.ref.outputs_prefix('model')}final.ckpt"
    wait("the output written", (marks / "written").exists)
    proxy = ws.proxy
    assert proxy is not None, "the workspace counts requests (workspace(count_requests=True))"
    sent = proxy.body_bytes()
    if under_way_bytes:
        wait("the upload under way", lambda: proxy.body_bytes() - sent >= under_way_bytes)
    else:
        wait("the output in the store", lambda: blob_size(client.store, big) == mib << 20, every=0.2)
    node = read_status(client.store, run.ref)[0].nodes[0].name
    announced = time.time()
    events.announce("Preempt", node)
    sigterm = float(wait("SIGTERM", lambda: (marks / "sigterm").exists() and (marks / "sigterm").read_text()))
    uploaded_at_sigterm = blob_size(client.store, big)
    wait("the checkpoint in the store", lambda: blob_size(client.store, ckpt) == CHECKPOINT)
    flushed = time.time()
    wait("the big output in the store", lambda: blob_size(client.store, big) == mib << 20, every=0.1)
    done = time.time()
    client.cancel(run.id)  # its next attempt is not part of the measure
    return {
        "stop_s": round(sigterm - announced, 3),
        "checkpoint_flushed_s": round(flushed - announced, 3),
        "big_output_done_s": round(done - announced, 3),
        "big_output_bytes_committed_at_sigterm": uploaded_at_sigterm,
    }


def main() -> None:
    def extra(parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--mib", type=int, default=None, help="size of the large output (default 1024)")

    args = arguments(__doc__.splitlines()[0], extra)
    mib = args.mib or (64 if args.quick else 1024)
    with ScheduledEventsServer() as events, workspace(count_requests=True) as ws:
        os.environ["JOBRUNNER_SCHEDULED_EVENTS_URL"] = events.url
        try:
            with local_pool(2):
                client = ws.client()
                idle = one(ws, client, events, 1, "idle", 0)
                progress(f"nothing uploading: {idle}")
                busy = one(ws, client, events, mib, "busy", min(mib << 20, 256 << 20) // 4)
                progress(f"during a {mib} MiB upload: {busy}")
        finally:
            os.environ.pop("JOBRUNNER_SCHEDULED_EVENTS_URL", None)
    emit(
        Result(
            name="preempt",
            value=busy["stop_s"],
            baseline=idle["stop_s"],
            unit="s",
            goal=(
                f"SIGTERM within {GOAL_STOP_S:.0f} s of a Preempt during a {mib} MiB upload, "
                f"the checkpoint in the store within the {NOTICE_S:.0f} s notice"
            ),
            met=busy["stop_s"] <= GOAL_STOP_S and busy["checkpoint_flushed_s"] <= NOTICE_S,
            detail={
                "output_mib": mib,
                "checkpoint_bytes": CHECKPOINT,
                "checkpoint_flushed_s": busy["checkpoint_flushed_s"],
                "during_upload": busy,
                "nothing_uploading": idle,
            },
        ),
        args.json,
    )


if __name__ == "__main__":
    main()
