"""Each Batch AI toolkit as a command and an Azure ML `distribution`.

Batch AI launched a toolkit's script itself (python, cntk, caffe, mpirun) with per-role
arguments; an Azure ML command job has one `command` and a `distribution` that says how many
processes run where. What each toolkit did, and what it becomes:

- tensorFlow: ps and worker tasks, master = worker 0, per-role args -> a `tensorflow`
  distribution; the command picks the args by `TF_CONFIG`'s task.
- pyTorch: processCount processes, init method in `AZ_BATCHAI_PYTORCH_INIT_METHOD` -> `pytorch`.
- horovod, chainer, distributed cntk/caffe: mpirun over processCount processes -> `mpi`.
- customMpi: the user's own `mpirun ...` line on the master -> `mpi`, running the program
  that follows the launcher and its options.
- caffe2: the script once per node (it meets its peers through a shared folder) -> no
  distribution, one process per node.
- caffe, cntk (one process): `caffe train --solver=...`, `cntk configFile=...` or a script.
- customToolkit: the command line on the master node only -> the command, guarded to node 0.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from typing import Any

from trainstack.batchai.fates import Ledger
from trainstack.batchai.models import (
    Caffe2Settings,
    CaffeSettings,
    ChainerSettings,
    CntkSettings,
    CustomMpiSettings,
    CustomToolkitSettings,
    HorovodSettings,
    PyTorchSettings,
    TensorFlowSettings,
    Toolkit,
)

Y = "job.yml"


@dataclass(frozen=True)
class ToolkitPlan:
    command: str
    distribution: dict[str, Any] | None
    environment: dict[str, str]


def plan_toolkit(name: str, tk: Toolkit, nodes: int, ledger: Ledger) -> ToolkitPlan:
    """The command and distribution for toolkit `name` (its field name in the file) on
    `nodes` nodes, recording the fate of each of its fields."""
    base = f"properties.{name}"
    env: dict[str, str] = {}
    if isinstance(tk, TensorFlowSettings):
        return _tensorflow(tk, nodes, base, ledger)
    if isinstance(tk, CustomMpiSettings):
        return _custom_mpi(tk, nodes, base, ledger)
    if isinstance(tk, CustomToolkitSettings):
        command = tk.command_line or "true"
        if tk.command_line:
            ledger.mapped(f"{base}.commandLine", f"{Y}: command")
        if nodes > 1:
            command = f'if [ "${{NODE_RANK:-0}}" = "0" ]; then\n  {command}\nfi'
            ledger.approximated(
                base,
                f"{Y}: command, run on node 0",
                "Batch AI ran a custom toolkit on the master node only; the other nodes "
                "start and stay idle, as they did",
            )
        return ToolkitPlan(command, None, env)
    if isinstance(tk, CntkSettings) and tk.config_file_path:
        command = _join("cntk", f"configFile={tk.config_file_path}", tk.command_line_args)
        ledger.mapped(f"{base}.configFilePath", f"{Y}: command (cntk configFile=...)")
        if tk.language_type:
            ledger.mapped(f"{base}.languageType", f"{Y}: command runs `cntk` (BrainScript)")
    elif isinstance(tk, CaffeSettings) and tk.config_file_path:
        command = _join("caffe", "train", f"--solver={tk.config_file_path}", tk.command_line_args)
        ledger.mapped(f"{base}.configFilePath", f"{Y}: command (caffe train --solver=...)")
    else:
        script = tk.python_script_file_path
        python = getattr(tk, "python_interpreter_path", None) or "python"
        command = _join(python, script, tk.command_line_args)
        ledger.mapped(f"{base}.pythonScriptFilePath", f"{Y}: command")
        if getattr(tk, "python_interpreter_path", None):
            ledger.mapped(f"{base}.pythonInterpreterPath", f"{Y}: command")
        if isinstance(tk, CntkSettings) and tk.language_type:
            ledger.mapped(f"{base}.languageType", f"{Y}: command runs the Python script")
    if tk.command_line_args:
        ledger.mapped(f"{base}.commandLineArgs", f"{Y}: command")
    processes = getattr(tk, "process_count", None)
    if isinstance(tk, Caffe2Settings):
        if nodes > 1:
            ledger.approximated(
                base,
                f"{Y}: resources.instance_count (one process per node)",
                "Caffe2 rendezvoused through $AZ_BATCHAI_SHARED_JOB_TEMP, a folder every "
                "node saw; a pool's is per node (its nodes share no disk) and Azure ML has "
                "none: mount a shared file system in the pool's nodeSetup and pass its path, "
                "or use Caffe2's redis rendezvous",
            )
        return ToolkitPlan(command, None, env)
    if isinstance(tk, PyTorchSettings):
        if tk.communication_backend:
            env["AZ_BATCHAI_PYTORCH_BACKEND"] = tk.communication_backend.lower()
            ledger.mapped(
                f"{base}.communicationBackend", f"{Y}: environment_variables.AZ_BATCHAI_PYTORCH_BACKEND"
            )
        dist = _per_node("pytorch", processes, nodes, f"{base}.processCount", ledger)
        return ToolkitPlan(command, dist, env)
    mpi = isinstance(tk, HorovodSettings | ChainerSettings) or (processes or nodes) > 1
    if mpi:
        return ToolkitPlan(command, _per_node("mpi", processes, nodes, f"{base}.processCount", ledger), env)
    if processes is not None:
        ledger.mapped(f"{base}.processCount", f"{Y}: one process")
    return ToolkitPlan(command, None, env)


def _per_node(kind: str, processes: int | None, nodes: int, path: str, ledger: Ledger) -> dict[str, Any]:
    """Batch AI counts processes in all; Azure ML counts them per node."""
    total = processes or nodes
    per_node = max(1, math.ceil(total / nodes))
    became = f"{Y}: distribution.process_count_per_instance = {per_node}"
    if processes is not None:
        if per_node * nodes == total:
            ledger.mapped(path, became)
        else:
            ledger.approximated(
                path,
                became,
                f"{total} processes do not split evenly over {nodes} nodes: {per_node * nodes} processes run",
            )
    return {"type": kind, "process_count_per_instance": per_node}


def _tensorflow(tk: TensorFlowSettings, nodes: int, base: str, ledger: Ledger) -> ToolkitPlan:
    python = tk.python_interpreter_path or "python"
    distributed = nodes > 1 or tk.worker_count is not None or tk.parameter_server_count is not None
    ledger.mapped(f"{base}.pythonScriptFilePath", f"{Y}: command")
    if tk.python_interpreter_path:
        ledger.mapped(f"{base}.pythonInterpreterPath", f"{Y}: command")
    roles = {
        "master": tk.master_command_line_args,
        "worker": tk.worker_command_line_args,
        "ps": tk.parameter_server_command_line_args,
    }
    fields = {
        "master": "masterCommandLineArgs",
        "worker": "workerCommandLineArgs",
        "ps": "parameterServerCommandLineArgs",
    }
    if not distributed:
        command = _join(python, tk.python_script_file_path, roles["master"] or roles["worker"])
        for role, args in roles.items():
            if args is not None:
                used = role == "master" or roles["master"] is None and role == "worker"
                if used:
                    ledger.mapped(f"{base}.{fields[role]}", f"{Y}: command")
                else:
                    ledger.unsupported(
                        f"{base}.{fields[role]}",
                        "a single-process job has no such task; Batch AI ignored it as well",
                    )
        return ToolkitPlan(command, None, {})
    workers = tk.worker_count if tk.worker_count is not None else nodes
    ps = tk.parameter_server_count if tk.parameter_server_count is not None else 1
    for field, value in (
        ("workerCount", tk.worker_count),
        ("parameterServerCount", tk.parameter_server_count),
    ):
        if value is not None:
            target = "worker_count" if field == "workerCount" else "parameter_server_count"
            ledger.mapped(f"{base}.{field}", f"{Y}: distribution.{target}")
    dist = {"type": "tensorflow", "worker_count": workers, "parameter_server_count": ps}

    def run(args: str | None) -> str:
        return _join(python, tk.python_script_file_path, args)

    # Batch AI's master is worker 0; its args default to the workers' and vice versa.
    master = roles["master"] if roles["master"] is not None else roles["worker"]
    worker = roles["worker"] if roles["worker"] is not None else roles["master"]
    cases: list[tuple[str, str]] = []
    if ps:
        cases.append(('"ps "*', run(roles["ps"])))
    if master != worker:
        cases.append(('"worker 0"', run(master)))
    cases.append(("*", run(worker)))
    for role, args in roles.items():
        if args is None:
            continue
        if role == "ps" and not ps:
            ledger.unsupported(
                f"{base}.{fields[role]}", "parameterServerCount is 0: no parameter server runs"
            )
        else:
            ledger.mapped(f"{base}.{fields[role]}", f"{Y}: command (the {role} task's arguments)")
    if len(cases) == 1:
        return ToolkitPlan(cases[0][1], dist, {})
    task = (
        '$(python -c \'import json, os; t = json.loads(os.environ["TF_CONFIG"])["task"]; '
        'print(t["type"], t["index"])\')'
    )
    body = "\n".join(f"  {pattern}) {cmd} ;;" for pattern, cmd in cases)
    return ToolkitPlan(f'case "{task}" in\n{body}\nesac', dist, {})


# mpirun/mpiexec options that take a value (OpenMPI, MPICH/Intel MPI spellings).
_MPI_VALUE_OPTIONS = {
    "-np",
    "-n",
    "-c",
    "--np",
    "-hostfile",
    "--hostfile",
    "-machinefile",
    "--machinefile",
    "-f",
    "-H",
    "-host",
    "--host",
    "-hosts",
    "-x",
    "--map-by",
    "-map-by",
    "--bind-to",
    "-bind-to",
    "-npernode",
    "--npernode",
    "-N",
    "-ppn",
    "-wdir",
    "--wdir",
    "-wd",
    "--prefix",
    "-rf",
    "--rankfile",
    "-iface",
}
_MPI_TWO_VALUE_OPTIONS = {"-mca", "--mca", "-genv", "-env", "-gmca", "--gmca"}


def _custom_mpi(tk: CustomMpiSettings, nodes: int, base: str, ledger: Ledger) -> ToolkitPlan:
    try:
        words = shlex.split(tk.command_line)
    except ValueError:
        words = []
    launcher = words[0].rsplit("/", 1)[-1] if words else ""
    processes = tk.process_count
    if launcher in ("mpirun", "mpiexec", "orterun"):
        i, np_value = 1, None
        while i < len(words) and words[i].startswith("-"):
            option = words[i]
            width = 3 if option in _MPI_TWO_VALUE_OPTIONS else 2 if option in _MPI_VALUE_OPTIONS else 1
            if option in ("-np", "-n", "-c", "--np") and i + 1 < len(words) and words[i + 1].isdigit():
                np_value = int(words[i + 1])
            i += width
        command = shlex.join(words[i:])
        ledger.approximated(
            f"{base}.commandLine",
            f"{Y}: command + distribution (mpi)",
            f"the job's own `{launcher}` and its options are dropped: the mpi distribution "
            "launches the program on every node; re-add options the program needs as "
            "environment variables (e.g. OMPI_MCA_*)",
        )
        processes = processes or np_value
    else:
        command = tk.command_line
        ledger.mapped(f"{base}.commandLine", f"{Y}: command (launched by the mpi distribution)")
    dist = _per_node("mpi", processes, nodes, f"{base}.processCount", ledger)
    return ToolkitPlan(command, dist, {})


def _join(*parts: str | None) -> str:
    return " ".join(p for p in parts if p)
