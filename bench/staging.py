"""staging: moving 1 GiB in and out of the store, as 1,000 files and as one file.

Stage-in is what an agent does before a job starts (`jobrunner.staging.stage_inputs` for a
`uri_folder` and a `uri_file` input on a datastore); stage-out is its output sync
(`OutputSync.sync`). The baseline is the azure-storage-blob SDK's own transfer in the same
run, the best of a plain loop and a pool of threads (folder) or of one and several
connections per blob (file). Throughput is MiB/s; the ratio is the agent's over the SDK's.

    .venv/bin/python bench/staging.py [--json] [--quick]

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

from jobrunner.spec import parse_job
from jobrunner.staging import OutputSync, stage_inputs
from jobrunner.status import RunRef

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


def best(ws: Workspace, label: str, variants: dict[str, Callable[[], object]]) -> tuple[float, str]:
    """The fastest of the SDK variants (seconds, which), each cleaned up after."""
    times = {}
    for name, work in variants.items():
        times[name] = timed(work)
        progress(f"  sdk {label} [{name}]: {times[name]:.2f} s")
        shutil.rmtree(ws.root / "sdk-out", ignore_errors=True)
    which = min(times, key=lambda k: times[k])
    return times[which], which


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    files, file_size, big_size = (20, 64 * 1024, 2 * MIB) if args.quick else (1000, MIB, 1024 * MIB)
    cases: dict[str, dict[str, object]] = {}
    with workspace() as ws:
        service = BlobServiceClient.from_connection_string(ws.connection)
        service.create_container(DATASTORE)
        folder, big = make_data(ws.folder("data"), files, file_size, big_size)
        sizes = {"folder": files * file_size, "file": big_size}
        store = ws.store()
        ref = RunRef(experiment="bench", id="run-staging")

        # ---- stage-out: the SDK, then the agent's output sync (into the run's outputs)
        out_sdk = {
            "folder": best(ws, "upload folder", {
                "loop": lambda: sdk_upload_folder(service, DATASTORE, folder, "sdk-up/many", 1),
                f"{SDK_THREADS} threads": lambda: sdk_upload_folder(
                    service, DATASTORE, folder, "sdk-up/many", SDK_THREADS),
            }),
            "file": best(ws, "upload file", {
                "1 connection": lambda: sdk_upload_file(service, DATASTORE, big, "sdk-up/one/big.bin", 1),
                f"{SDK_THREADS} connections": lambda: sdk_upload_file(
                    service, DATASTORE, big, "sdk-up/one/big.bin", SDK_THREADS),
            }),
        }  # fmt: skip
        spec = parse_job(
            "command: 'true'\n"
            "outputs:\n  many: {type: uri_folder}\n  one: {type: uri_folder}\n"
            "inputs:\n"
            f"  many: {{type: uri_folder, path: 'azureml://datastores/{DATASTORE}/paths/sdk-up/many'}}\n"
            f"  one: {{type: uri_file, path: 'azureml://datastores/{DATASTORE}/paths/sdk-up/one/big.bin'}}\n",
            source="bench-job.yml",
        )
        out_agent = {
            "folder": timed(OutputSync(store, ref, spec, {"many": folder}).sync),
            "file": timed(OutputSync(store, ref, spec, {"one": big.parent}).sync),
        }
        progress(f"  agent upload: {out_agent}")

        # ---- stage-in: the SDK, then the agent's stage_inputs (both inputs at once)
        sdk_out = ws.root / "sdk-out"
        in_sdk = {
            "folder": best(ws, "download folder", {
                "loop": lambda: sdk_download_folder(service, DATASTORE, "sdk-up/many", sdk_out, 1),
                f"{SDK_THREADS} threads": lambda: sdk_download_folder(
                    service, DATASTORE, "sdk-up/many", sdk_out, SDK_THREADS),
            }),
            "file": best(ws, "download file", {
                "1 connection": lambda: sdk_download_file(
                    service, DATASTORE, "sdk-up/one/big.bin", sdk_out / "big.bin", 1),
                f"{SDK_THREADS} connections": lambda: sdk_download_file(
                    service, DATASTORE, "sdk-up/one/big.bin", sdk_out / "big.bin", SDK_THREADS),
            }),
        }  # fmt: skip
        in_agent = {}
        for name, input_name in (("folder", "many"), ("file", "one")):
            only = spec.model_copy(update={"inputs": {input_name: spec.inputs[input_name]}})
            target = ws.root / "agent-in"
            in_agent[name] = timed(lambda only=only, target=target: stage_inputs(store, ref, only, target))
            shutil.rmtree(target, ignore_errors=True)
        progress(f"  agent download: {in_agent}")

        for direction, sdk, agent in (("in", in_sdk, in_agent), ("out", out_sdk, out_agent)):
            for kind in ("folder", "file"):
                sdk_s, which = sdk[kind]
                mib = sizes[kind] / MIB
                cases[f"stage-{direction} {kind}"] = {
                    "agent_mib_s": round(mib / agent[kind], 1),
                    "sdk_mib_s": round(mib / sdk_s, 1),
                    "sdk_best": which,
                    "ratio": round(sdk_s / agent[kind], 3),
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
            detail={"worst_case": worst, "files": files, "file_size": file_size, "big_file_size": big_size,
                    "cases": cases},
        ),
        args.json,
    )  # fmt: skip


if __name__ == "__main__":
    main()
