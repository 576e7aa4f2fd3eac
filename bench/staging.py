"""staging: moving 1 GiB in and out of the store, as 1,000 files and as one file.

Stage-in is what an agent does before a job starts (`jobrunner.node.staging.stage_inputs` for a
`uri_folder` and a `uri_file` input on a datastore); stage-out is its output sync
(`OutputSync.sync`). The baseline is the azure-storage-blob SDK's own transfer in the same
run, the best of a plain loop and a pool of threads (folder) or of one and several
connections per blob (file). Throughput is MiB/s; the ratio is the agent's over the SDK's.
The two sides alternate for `--rounds` rounds and each keeps its best, so that a busy
spell of the machine (or of Azurite) does not land on one side only.

    .venv/bin/python bench/staging.py [--json] [--quick] [--rounds N]

Goal: ratio at least 0.9 in each of the four cases (in/out x folder/file).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import Result, Workspace, arguments, emit, progress, workspace
from azure.storage.blob import BlobServiceClient

from jobrunner.node.staging import OutputSync, stage_inputs
from jobrunner.spec.job import parse_job
from jobrunner.store.status import RunRef

GOAL_RATIO = 0.9
MIB = 1 << 20
DATASTORE = "benchdata"
SDK_THREADS = 8


def make_data(root: Path, files: int, file_size: int, big_size: int) -> tuple[Path, Path]:
    """A folder of `files` files and one file of `big_size` bytes (one random block repeated)."""
    block = os.urandom(min(MIB, file_size, big_size))
    folder = root / "many"
    folder.mkdir(parents=True)
    for i in range(files):
        (folder / f"part-{i:05d}.bin").write_bytes((block * (file_size // len(block) + 1))[:file_size])
    big = root / "one" / "big.bin"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as f:
        for _ in range(big_size // len(block)):
            f.write(block)
    return folder, big


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def sdk_upload_folder(
    service: BlobServiceClient, container: str, folder: Path, prefix: str, threads: int
) -> None:
    client = service.get_container_client(container)

    def one(path: Path) -> None:
        with open(path, "rb") as f:
            client.upload_blob(f"{prefix}/{path.name}", f, overwrite=True)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, sorted(folder.iterdir())))


def sdk_upload_file(
    service: BlobServiceClient, container: str, path: Path, name: str, connections: int
) -> None:
    with open(path, "rb") as f:
        service.get_blob_client(container, name).upload_blob(f, overwrite=True, max_concurrency=connections)


def sdk_download_folder(
    service: BlobServiceClient, container: str, prefix: str, dest: Path, threads: int
) -> None:
    client = service.get_container_client(container)
    dest.mkdir(parents=True, exist_ok=True)

    def one(name: str) -> None:
        with open(dest / name.rsplit("/", 1)[-1], "wb") as f:
            client.download_blob(name).readinto(f)

    names = [b.name for b in client.list_blobs(name_starts_with=prefix + "/")]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, names))


def sdk_download_file(
    service: BlobServiceClient, container: str, name: str, dest: Path, connections: int
) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as f:
        service.get_blob_client(container, name).download_blob(max_concurrency=connections).readinto(f)


def measure_case(
    ws: Workspace, case: str, sdk: dict[str, Callable[[], object]], agent: Callable[[], object]
) -> tuple[dict[str, float], float]:
    """Each SDK variant, then the agent, once: (seconds per SDK variant, agent seconds)."""
    times = {}
    for name, work in sdk.items():
        times[name] = timed(work)
        shutil.rmtree(ws.root / "sdk-out", ignore_errors=True)
    took = timed(agent)
    shutil.rmtree(ws.root / "agent-in", ignore_errors=True)
    progress(f"  {case}: sdk {', '.join(f'{k} {v:.2f} s' for k, v in times.items())}; agent {took:.2f} s")
    return times, took


def main() -> None:
    def extra(parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 2)")

    args = arguments(__doc__.splitlines()[0], extra)
    files, file_size, big_size = (20, 64 * 1024, 2 * MIB) if args.quick else (1000, MIB, 1024 * MIB)
    rounds = args.rounds or (1 if args.quick else 2)
    sizes = {"folder": files * file_size, "file": big_size}
    with workspace() as ws:
        service = BlobServiceClient.from_connection_string(ws.connection)
        service.create_container(DATASTORE)
        folder, big = make_data(ws.folder("data"), files, file_size, big_size)
        store = ws.store()
        ref = RunRef(experiment="bench", id="run-staging")
        spec = parse_job(
            "command: 'true'\n"
            "outputs:\n  many: {type: uri_folder}\n  one: {type: uri_folder}\n"
            "inputs:\n"
            f"  many: {{type: uri_folder, path: 'azureml://datastores/{DATASTORE}/paths/sdk-up/many'}}\n"
            f"  one: {{type: uri_file, path: 'azureml://datastores/{DATASTORE}/paths/sdk-up/one/big.bin'}}\n",
            source="bench-job.yml",
        )

        def stage_in(name: str) -> Callable[[], object]:
            only = spec.model_copy(update={"inputs": {name: spec.inputs[name]}})
            return lambda: stage_inputs(store, ref, only, ws.root / "agent-in")

        sdk_out = ws.root / "sdk-out"
        # Stage-out first: its SDK uploads are the data that stage-in then reads. A fresh
        # OutputSync each time, so that it sends every file (it skips what it already sent).
        plan: dict[str, tuple[dict[str, Callable[[], object]], Callable[[], object]]] = {
            "stage-out folder": ({
                "loop": lambda: sdk_upload_folder(service, DATASTORE, folder, "sdk-up/many", 1),
                f"{SDK_THREADS} threads": lambda: sdk_upload_folder(
                    service, DATASTORE, folder, "sdk-up/many", SDK_THREADS),
            }, lambda: OutputSync(store, ref, spec, {"many": folder}).sync()),
            "stage-out file": ({
                "1 connection": lambda: sdk_upload_file(service, DATASTORE, big, "sdk-up/one/big.bin", 1),
                f"{SDK_THREADS} connections": lambda: sdk_upload_file(
                    service, DATASTORE, big, "sdk-up/one/big.bin", SDK_THREADS),
            }, lambda: OutputSync(store, ref, spec, {"one": big.parent}).sync()),
            "stage-in folder": ({
                "loop": lambda: sdk_download_folder(service, DATASTORE, "sdk-up/many", sdk_out, 1),
                f"{SDK_THREADS} threads": lambda: sdk_download_folder(
                    service, DATASTORE, "sdk-up/many", sdk_out, SDK_THREADS),
            }, stage_in("many")),
            "stage-in file": ({
                "1 connection": lambda: sdk_download_file(
                    service, DATASTORE, "sdk-up/one/big.bin", sdk_out / "big.bin", 1),
                f"{SDK_THREADS} connections": lambda: sdk_download_file(
                    service, DATASTORE, "sdk-up/one/big.bin", sdk_out / "big.bin", SDK_THREADS),
            }, stage_in("one")),
        }  # fmt: skip
        sdk_best: dict[str, dict[str, float]] = {case: {} for case in plan}
        agent_best: dict[str, float] = {}
        for r in range(rounds):
            progress(f"round {r + 1} of {rounds}")
            for case, (sdk, agent) in plan.items():
                times, took = measure_case(ws, case, sdk, agent)
                for name, t in times.items():
                    sdk_best[case][name] = min(t, sdk_best[case].get(name, t))
                agent_best[case] = min(took, agent_best.get(case, took))
    cases: dict[str, dict[str, object]] = {}
    for case, variants in sdk_best.items():
        which = min(variants, key=lambda k: variants[k])
        mib = sizes[case.split()[-1]] / MIB
        cases[case] = {
            "agent_mib_s": round(mib / agent_best[case], 1),
            "sdk_mib_s": round(mib / variants[which], 1),
            "sdk_best": which,
            "ratio": round(variants[which] / agent_best[case], 3),
        }
    worst = min(cases, key=lambda k: float(cases[k]["ratio"]))  # type: ignore[arg-type]
    emit(
        Result(
            name="staging",
            value=float(cases[worst]["agent_mib_s"]),  # type: ignore[arg-type]
            baseline=float(cases[worst]["sdk_mib_s"]),  # type: ignore[arg-type]
            unit="MiB/s",
            goal=f"agent throughput at least {GOAL_RATIO}x the SDK's best in every case (headline: worst)",
            met=all(float(c["ratio"]) >= GOAL_RATIO for c in cases.values()),  # type: ignore[arg-type]
            detail={"worst_case": worst, "rounds": rounds, "files": files, "file_size": file_size,
                    "big_file_size": big_size, "cases": cases},
        ),
        args.json,
    )  # fmt: skip


if __name__ == "__main__":
    main()
