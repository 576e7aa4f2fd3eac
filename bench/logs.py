"""logs: a chatty job on a 1-agent local pool against the same job and environment outside it,
and what the agent sends to the store for what a job writes.

The chatty job (a Python loop of `print`, 200,000 lines) times itself from its first line
to its last, flushed, and writes that time to a file. The baseline is the same script run
directly with the environment a pool's processes get (`PYTHONUNBUFFERED=1`, so that logs
arrive as written) and the same kind of stdout: a pipe of the pool's size (`PIPE_BYTES`)
that a reader drains into a file as the agent reads it (`jobrunner.node.launch.nap_after`),
without anything else the agent does with the bytes. The detail has it also straight into
a file (`> file`) and into /dev/null, with and without that variable (as a user would run
it). The sides alternate in every round; the value and the baseline are the best of the
rounds (the machine's load only ever adds), the medians in the detail. Lines per second
reaching the store: 200,000 over the time from the job's first line until the log blob holds
every byte (the bench looks at the store only once the job has printed its last line, so
that its polling takes no CPU from the job).

The agent's CPU (`detail.agent_cpu_s`): CPU seconds of the agent process (its job not
included) from submit to the end of each chatty run, beside a quiet run of the same length
(a job that only sleeps that long): the difference is what handling the output costs the
agent, per MB in `detail.agent_cpu_s_per_mb`. CPU seconds, unlike the job's time, do not
depend much on what else the machine runs. The job's own CPU seconds over its loop on the pool
and outside it (`detail.job_cpu_s`, `detail.job_cpu_ratio`): a pipe costs the job's writes
more than /dev/null does; what is left of the time ratio beyond both is waiting for a core.

Upload amplification: a second job writes 1 MB/s for 60 s, half as log lines on stdout and
half appended to a growing output file; every byte the agent sends the store is counted on
the wire (request bodies through `CountingProxy`: logs, stream indexes, outputs, status,
heartbeats), over the bytes the job wrote (its log and its output file as they end up).

    .venv/bin/python bench/logs.py [--json] [--quick] [--lines N] [--rounds N] [--seconds N]

Goals: the chatty job at most 5 % slower on the pool than outside it; amplification at most 1.1.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import (
    PYTHON,
    Result,
    agents_cpu_s,
    arguments,
    emit,
    local_pool,
    progress,
    wait_until_done,
    workspace,
    write_job,
)

from jobrunner.errors import NotFoundError
from jobrunner.node.launch import PIPE_BYTES, nap_after
from jobrunner.store.client import RUNS

GOAL_SLOWDOWN = 0.05
GOAL_AMPLIFICATION = 1.1
WRITER = """\
import os, sys, time
out, seconds, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
line = b"step 0000000 loss 0.123456 lr 0.000100 throughput 1234.5 samples/s\\n"
tick = 0.1
half = int(rate * tick / 2)  # per tick: half to the log, half to the growing output file
lines = line * (half // len(line))
started = time.time()
with open(os.path.join(out, "growing.bin"), "ab") as f:
    n = 0
    while time.time() - started < seconds:
        sys.stdout.buffer.write(lines)
        sys.stdout.flush()
        f.write(os.urandom(half))
        f.flush()
        n += 1
        time.sleep(max(0.0, started + n * tick - time.time()))
"""
LINE = "step {i:07d} loss 0.123456 lr 0.000100 throughput 1234.5 samples/s"
SCRIPT = f"""\
import sys, time
n, out = int(sys.argv[1]), sys.argv[2]
started, cpu = time.time(), time.process_time()
for i in range(n):
    print({LINE!r}.format(i=i))
sys.stdout.flush()
ended, cpu = time.time(), time.process_time() - cpu
open(out, "w").write(f"{{started}} {{ended}} {{cpu}}")
"""


def expected_bytes(lines: int) -> int:
    return sum(len(LINE.format(i=i)) + 1 for i in range(lines))


def job_times(timing: Path) -> tuple[float, float, float]:
    """(the job's first line, its seconds from there to its last line flushed, its CPU seconds
    meanwhile) from the file the chatty job writes."""
    started, ended, cpu = map(float, timing.read_text().split())
    return started, ended - started, cpu


def direct(
    script: Path,
    lines: int,
    out: Path,
    *,
    unbuffered: bool,
    drained_to: Path | None = None,
    to_file: Path | None = None,
) -> tuple[float, float]:
    """(seconds, CPU seconds) of the chatty job run outside the pool: its output to /dev/null,
    or into a pipe as wide as the pool's that a thread drains into the file `drained_to` as the
    agent reads (`nap_after`), or straight into the file `to_file` (`python job.py > file`)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    argv = [PYTHON, str(script), str(lines), str(out)]
    if drained_to is None:
        with open(to_file or os.devnull, "wb") as sink:
            subprocess.run(argv, stdout=sink, env=env, check=True)
        return job_times(out)[1:]
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)

    def drain() -> None:
        # the agent's read cadence (`jobrunner.node.launch._pump`): a reader waking at every line
        # would cost the job more than the agent does
        with open(drained_to, "wb") as sink:
            while chunk := os.read(read_fd, PIPE_BYTES):
                sink.write(chunk)
                if nap := nap_after(len(chunk), PIPE_BYTES):
                    time.sleep(nap)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        subprocess.run(argv, stdout=write_fd, env=env, check=True)
    finally:
        os.close(write_fd)
        reader.join()
        os.close(read_fd)
    return job_times(out)[1:]


def amplification(ws, client, seconds: float, rate: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Run the writer job; bytes it wrote, bytes the agent sent the store meanwhile, their ratio."""
    code = ws.folder("writer")
    (code / "writer.py").write_text(WRITER)
    job = write_job(
        ws.folder("jobs"), "writer.yml",
        f"command: {sys.executable} writer.py ${{{{outputs.model}}}} {seconds} {rate}\ncode: {code}\n"
        "outputs:\n  model:\n    type: uri_folder\n",
    )  # fmt: skip
    run = client.submit(job)
    sent_before = ws.proxy.body_bytes()
    status = wait_until_done(client, run.id, timeout_s=seconds * 4 + 120)
    sent = ws.proxy.body_bytes() - sent_before
    if status.state.value != "succeeded":
        raise RuntimeError(f"{run.id} ended {status.state.value}: {status.reason}")
    log = client.store.size(RUNS, f"{run.ref.logs_prefix(1)}node-0.txt")
    output = client.store.size(RUNS, f"{run.ref.outputs_prefix('model')}growing.bin")
    return {"job_wrote_bytes": log + output, "log_bytes": log, "output_bytes": output,
            "sent_bytes": sent, "amplification": round(sent / (log + output), 4)}  # fmt: skip


def quiet_run(ws, client, seconds: float, r: int) -> float:  # type: ignore[no-untyped-def]
    """The agent's CPU seconds for a job that prints nothing and sleeps `seconds`."""
    job = write_job(
        ws.folder("jobs"),
        f"quiet-{r}.yml",
        f"command: {sys.executable} -c 'import time; time.sleep({seconds:.3f})'\n",
    )
    before = agents_cpu_s()
    run = client.submit(job)
    status = wait_until_done(client, run.id)
    if status.state.value != "succeeded":
        raise RuntimeError(f"{run.id} ended {status.state.value}: {status.reason}")
    return agents_cpu_s() - before


def main() -> None:
    def extra(parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--lines", type=int, default=None, help="lines to print (default 200000)")
        parser.add_argument("--rounds", type=int, default=None, help="runs of each (default 7)")
        parser.add_argument("--seconds", type=float, default=None, help="the writer's seconds (default 60)")

    args = arguments(__doc__.splitlines()[0], extra)
    lines = args.lines or (2000 if args.quick else 200_000)
    rounds = args.rounds or (1 if args.quick else 7)
    seconds = args.seconds or (3.0 if args.quick else 60.0)
    size = expected_bytes(lines)
    plain, unbuffered, piped, to_file, pool, arrival = [], [], [], [], [], []
    cpu: dict[str, list[float]] = {"chatty": [], "quiet": []}
    job_cpu: dict[str, list[float]] = {"outside_piped": [], "outside_unbuffered": [], "pool": []}
    with workspace(count_requests=True) as ws, local_pool(1):
        client = ws.client()
        code = ws.folder("code")
        (code / "printer.py").write_text(SCRIPT)
        quiet_run(ws, client, 0.1, -1)  # the agent's first job imports what jobs need: not counted
        for r in range(rounds):
            plain.append(direct(code / "printer.py", lines, ws.root / "direct.txt", unbuffered=False)[0])
            seconds_outside, cpu_outside = direct(
                code / "printer.py", lines, ws.root / "direct.txt", unbuffered=True
            )
            unbuffered.append(seconds_outside)
            job_cpu["outside_unbuffered"].append(round(cpu_outside, 3))
            seconds_outside, cpu_outside = direct(
                code / "printer.py", lines, ws.root / "direct.txt", unbuffered=True,
                drained_to=ws.root / "direct-stdout.txt",
            )  # fmt: skip
            piped.append(seconds_outside)
            job_cpu["outside_piped"].append(round(cpu_outside, 3))
            to_file.append(
                direct(
                    code / "printer.py", lines, ws.root / "direct.txt", unbuffered=True,
                    to_file=ws.root / "direct-stdout.txt",
                )[0]
            )  # fmt: skip
            timing = ws.root / f"pool-{r}.txt"
            job = write_job(
                ws.folder("jobs"), f"logs-{r}.yml",
                f"command: {sys.executable} printer.py {lines} {timing}\ncode: {code}\n",
            )  # fmt: skip
            cpu_before = agents_cpu_s()
            run = client.submit(job)
            blob = f"{run.ref.logs_prefix(1)}node-0.txt"
            arrived = None
            while arrived is None:
                try:
                    if timing.exists() and client.store.size(RUNS, blob) >= size:
                        arrived = time.time()
                except NotFoundError:
                    pass
                time.sleep(0.05)
            status = wait_until_done(client, run.id)
            cpu["chatty"].append(round(agents_cpu_s() - cpu_before, 3))
            if status.state.value != "succeeded":
                raise RuntimeError(f"{run.id} ended {status.state.value}: {status.reason}")
            started, seconds_pool, cpu_pool = job_times(timing)
            pool.append(seconds_pool)
            job_cpu["pool"].append(round(cpu_pool, 3))
            arrival.append(arrived - started)
            cpu["quiet"].append(round(quiet_run(ws, client, seconds_pool, r), 3))
            progress(
                f"round {r + 1}: outside, a drained pipe {piped[-1]:.3f} s (a file {to_file[-1]:.3f} s, "
                f"/dev/null {unbuffered[-1]:.3f} s, buffered {plain[-1]:.3f} s), pool {pool[-1]:.3f} s, "
                f"in the "
                f"store after {arrival[-1]:.3f} s; agent CPU {cpu['chatty'][-1]:.3f} s (a quiet run "
                f"as long: {cpu['quiet'][-1]:.3f} s)"
            )
        amplified = amplification(ws, client, seconds, 1_000_000)
        progress(f"writer: {amplified}")
    base, value = min(piped), min(pool)
    paired = [p / b for p, b in zip(pool, piped, strict=True)]
    output_cpu = statistics.median(cpu["chatty"]) - statistics.median(cpu["quiet"])
    slowdown = value / base - 1
    emit(
        Result(
            name="logs",
            value=round(value, 4),
            baseline=round(base, 4),
            unit="s",
            goal=(
                f"job printing {lines} lines at most {GOAL_SLOWDOWN:.0%} slower than the same job and "
                f"environment outside the pool; upload amplification at most {GOAL_AMPLIFICATION}"
            ),
            met=slowdown <= GOAL_SLOWDOWN and amplified["amplification"] <= GOAL_AMPLIFICATION,
            detail={
                "lines": lines,
                "bytes": size,
                "slowdown": round(slowdown, 4),
                "upload_amplification": amplified["amplification"],
                "writer": {"seconds": seconds, "rate_bytes_per_s": 1_000_000, **amplified},
                "median_ratio": round(statistics.median(pool) / statistics.median(piped), 4),
                # each round's pool run over the baseline run just before it, the median of those
                "paired_ratio_median": round(statistics.median(paired), 4),
                "ratio_vs_devnull_unbuffered": round(value / min(unbuffered), 4),
                "ratio_vs_a_file": round(value / min(to_file), 4),
                "slowdown_vs_devnull_as_a_user_runs_it": round(value / min(plain) - 1, 4),
                "lines_per_s_to_store": round(lines / statistics.median(arrival)),
                "agent_cpu_s": cpu,
                "agent_cpu_s_per_mb": round(output_cpu / (size / 1e6), 5),
                "job_cpu_s": job_cpu,
                "job_cpu_ratio": round(
                    statistics.median(job_cpu["pool"]) / statistics.median(job_cpu["outside_piped"]), 4
                ),
                "job_s": {
                    "outside_piped": piped,
                    "outside_to_a_file": to_file,
                    "outside_unbuffered": unbuffered,
                    "outside_as_a_user_runs_it": plain,
                    "pool": pool,
                },  # fmt: skip
                "store_arrival_s": arrival,
            },
        ),
        args.json,
    )


if __name__ == "__main__":
    main()
