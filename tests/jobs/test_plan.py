"""Launch plans per distribution: argv and environment per node and process."""

from __future__ import annotations

import json

import pytest

from jobrunner.errors import LaunchError
from jobrunner.plan.launch_plan import plan_launch
from jobrunner.spec.job import JobSpec, parse_job

from .planning import gang, node, paths


def spec(text: str) -> JobSpec:
    return parse_job(text, source="job.yml", check_paths=False)


def test_no_distribution_runs_the_command_once_on_every_node() -> None:
    job = spec(
        "command: python run.py --lr ${{inputs.lr}} --data ${{inputs.d}} --out ${{outputs.o}}\n"
        "inputs: {lr: 0.5, d: {path: 'azureml://datastores/s/paths/x'}}\noutputs: {o: }\n"
        "environment_variables: {RANK: '99', MINE: 'yes'}\nresources: {instance_count: 2}\n"
        "experiment_name: exp\n"
    )
    p = paths(1, inputs={"d": "/data/d"}, outputs={"o": "/out/o"})
    plan = plan_launch(job, node(1), gang(2, 1), p)
    assert plan.distribution == "none" and plan.preparation is None and not plan.files
    (proc,) = plan.processes
    assert proc.argv == ("bash", "-c", "python run.py --lr 0.5 --data /data/d --out /out/o")
    assert proc.cwd == p.code
    assert proc.log_name == "node-1"
    env = proc.env
    assert env["MINE"] == "yes"
    assert env["RANK"] == "1" and env["NODE_RANK"] == "1" and env["WORLD_SIZE"] == "2"
    assert env["MASTER_ADDR"] == "10.0.0.4" and env["MASTER_PORT"] == "6105"
    assert env["AZ_BATCH_MASTER_NODE"] == "10.0.0.4:6105"
    assert env["AZ_BATCHAI_MPI_MASTER_NODE"] == "10.0.0.4"
    assert env["AZ_BATCHAI_INPUT_D"] == "/data/d" and env["AZ_BATCHAI_OUTPUT_O"] == "/out/o"
    assert env["AZ_BATCHAI_JOB_MOUNT_ROOT"] == p.root and env["AZ_BATCHAI_JOB_TEMP"] == p.temp
    assert env["AZUREML_RUN_ID"] == "job-1" and env["TRAINSTACK_ATTEMPT"] == "2"
    assert env["AZUREML_EXPERIMENT_NAME"] == "exp"


def test_pytorch_uses_torchrun_with_c10d_on_the_leader() -> None:
    job = spec("command: python train.py\nresources: {instance_count: 2}\ndistribution: {type: pytorch}\n")
    plans = [plan_launch(job, node(r, gpus=4), gang(2, r), paths(r)) for r in (0, 1)]
    for r, plan in enumerate(plans):
        (proc,) = plan.processes
        assert proc.argv == (
            "torchrun",
            "--nnodes=2",
            "--nproc-per-node=4",
            f"--node-rank={r}",
            "--rdzv-backend=c10d",
            "--rdzv-endpoint=10.0.0.4:6105",
            "--rdzv-id=job-1-2",
            f"--rdzv-conf=is_host={'true' if r == 0 else 'false'}",
            f"--local-addr=10.0.0.{r + 4}",
            "--max-restarts=0",
            "--no-python",
            "bash",
            "-c",
            'export AZ_BATCHAI_TASK_INDEX="${RANK}"\npython train.py',
        )
        assert proc.env["WORLD_SIZE"] == "8" and proc.env["LOCAL_WORLD_SIZE"] == "4"
        assert proc.env["AZ_BATCHAI_PYTORCH_BACKEND"] == "nccl"
        assert proc.env["AZ_BATCHAI_NUM_GPUS"] == "4"


def test_pytorch_on_cpu_defaults_to_one_process_and_gloo() -> None:
    job = spec("command: x\ndistribution: {type: pytorch}\n")
    (proc,) = plan_launch(job, node(0), gang(1, 0), paths()).processes
    assert "--nproc-per-node=1" in proc.argv
    assert proc.env["AZ_BATCHAI_PYTORCH_BACKEND"] == "gloo" and proc.env["WORLD_SIZE"] == "1"


def test_tensorflow_gives_each_task_its_tf_config() -> None:
    job = spec(
        "command: python t.py\nresources: {instance_count: 2}\n"
        "distribution: {type: tensorflow, worker_count: 3, parameter_server_count: 1}\n"
    )
    # Each member reserved two ports of its own (rank order): a task takes its node's.
    g = [gang(2, r, ports=(7000, 7001, 8000, 8001)) for r in (0, 1)]
    plans = [plan_launch(job, node(r), g[r], paths(r)) for r in (0, 1)]
    configs = [json.loads(p.env["TF_CONFIG"]) for plan in plans for p in plan.processes]
    cluster = {"worker": ["10.0.0.4:7000", "10.0.0.5:8000", "10.0.0.4:7001"], "ps": ["10.0.0.5:8001"]}
    assert all(c["cluster"] == cluster and c["environment"] == "cloud" for c in configs)
    assert [c["task"] for c in configs] == [
        {"type": "worker", "index": 0},
        {"type": "worker", "index": 2},
        {"type": "worker", "index": 1},
        {"type": "ps", "index": 0},
    ]
    node1 = plans[1].processes
    assert [p.log_name for p in node1] == ["node-1.worker-1", "node-1.ps-0"]
    assert node1[0].env["AZ_BATCHAI_TASK_INDEX"] == "1" and node1[1].env["AZ_BATCHAI_TASK_INDEX"] == "0"
    assert node1[0].env["AZ_BATCHAI_WORKER_HOSTS"] == "10.0.0.4:7000,10.0.0.5:8000,10.0.0.4:7001"
    assert node1[0].env["AZ_BATCHAI_PS_HOSTS"] == "10.0.0.5:8001"
    assert node1[0].argv == ("bash", "-c", "python t.py")


def test_tensorflow_tasks_on_one_address_never_share_a_port() -> None:
    # A local pool: both members at 127.0.0.1, and by chance both reserved 7000.
    job = spec(
        "command: x\nresources: {instance_count: 2}\n"
        "distribution: {type: tensorflow, worker_count: 3, parameter_server_count: 2}\n"
    )
    local = ["127.0.0.1"] * 2
    plan = plan_launch(
        job, node(0, address="127.0.0.1"), gang(2, 0, addresses=local, ports=(7000, 7000)), paths()
    )
    cluster = json.loads(plan.processes[0].env["TF_CONFIG"])["cluster"]
    hosts = cluster["worker"] + cluster["ps"]
    assert hosts == ["127.0.0.1:7000", "127.0.0.1:6106", "127.0.0.1:6107", "127.0.0.1:6108", "127.0.0.1:6109"]


def test_tensorflow_defaults_one_worker_per_node_and_ports_after_the_master_port() -> None:
    job = spec("command: x\nresources: {instance_count: 2}\ndistribution: {type: tensorflow}\n")
    (proc,) = plan_launch(job, node(1), gang(2, 1), paths(1)).processes
    config = json.loads(proc.env["TF_CONFIG"])
    assert config["cluster"] == {"worker": ["10.0.0.4:6106", "10.0.0.5:6106"]}
    assert config["task"] == {"type": "worker", "index": 1}


def test_mpi_runs_mpirun_on_the_leader_with_a_host_file() -> None:
    job = spec(
        "command: ./hello\nresources: {instance_count: 2}\n"
        "distribution: {type: mpi, process_count_per_instance: 3}\n"
    )
    leader = plan_launch(job, node(0), gang(2, 0), paths(0))
    (proc,) = leader.processes
    host_file = "/runs/job-1/2/node0/tmp/mpi-hostfile"
    assert leader.files == {host_file: "10.0.0.4 slots=3\n10.0.0.5 slots=3\n"}
    assert proc.argv[:7] == ("mpirun", "--hostfile", host_file, "-np", "6", "--bind-to", "none")
    assert proc.argv[-3:] == ("bash", "-c", 'export AZ_BATCHAI_TASK_INDEX="${OMPI_COMM_WORLD_RANK}"\n./hello')
    assert ("-x", "MASTER_ADDR") in list(zip(proc.argv, proc.argv[1:], strict=False))
    assert proc.env["AZ_BATCHAI_MPI_HOST_FILE"] == host_file and proc.env["WORLD_SIZE"] == "6"
    other = plan_launch(job, node(1), gang(2, 1), paths(1))
    assert other.processes == () and other.waits_for_leader and "mpirun on the leader" in other.notes[0]


def test_mpi_on_one_address_is_one_host_line() -> None:
    job = spec("command: x\nresources: {instance_count: 2}\ndistribution: {type: mpi}\n")
    plan = plan_launch(job, node(0, address="127.0.0.1"), gang(2, 0, addresses=["127.0.0.1"] * 2), paths())
    assert list(plan.files.values()) == ["127.0.0.1 slots=2\n"]


def test_container_mode_wraps_every_process() -> None:
    job = spec(
        "command: python t.py ${{inputs.d}}\nenvironment: {image: 'pytorch/pytorch:2.4'}\n"
        "inputs: {d: {path: 'azureml://datastores/s/paths/x'}}\n"
        "resources: {shm_size: 16g, docker_args: '--ulimit memlock=-1'}\n"
        "trainstack: {preparation: {command: pip install -e .}}\n"
    )
    p = paths(inputs={"d": "/data/d"})
    plan = plan_launch(job, node(0, gpus=8, docker=True), gang(1, 0), p)
    (proc,) = plan.processes
    argv = list(proc.argv)
    assert argv[:9] == [
        "docker",
        "run",
        "--rm",
        "--name",
        "ts-job-1-2-0-0",
        "--network",
        "host",
        "--ipc",
        "host",
    ]
    assert "--gpus" in argv and argv[argv.index("--shm-size") + 1] == "16g"
    assert f"{p.root}:{p.root}:rw" in argv and "/data/d:/data/d:ro" in argv
    assert f"{p.code}:{p.code}:rw" not in argv  # inside the root, already mounted
    assert argv[argv.index("-w") + 1] == p.code
    assert argv[argv.index("pytorch/pytorch:2.4") - 2 :] == [
        "--ulimit",
        "memlock=-1",
        "pytorch/pytorch:2.4",
        "bash",
        "-c",
        "python t.py /data/d",
    ]
    assert argv[argv.index("MASTER_ADDR") - 1] == "-e"
    assert plan.image == "pytorch/pytorch:2.4" and plan.notes == ()
    assert plan.preparation is not None and plan.preparation.argv[0] == "docker"
    assert plan.preparation.argv[-1] == "pip install -e ."


def test_without_a_container_runtime_the_image_is_noted_and_not_used() -> None:
    job = spec(
        "command: echo\nenvironment: {image: python:3.11}\ntrainstack: {preparation: {command: make}}\n"
    )
    plan = plan_launch(job, node(0), gang(1, 0), paths())
    assert plan.image is None
    assert plan.processes[0].argv == ("bash", "-c", "echo")
    assert plan.notes == (
        "image python:3.11 not used: no container runtime on node0; the command runs on the node",
    )
    assert plan.preparation is not None
    assert (
        plan.preparation.argv == ("bash", "-c", "make") and plan.preparation.log_name == "node-0.preparation"
    )


def test_direct_inputs_and_optional_parts() -> None:
    job = spec(
        "command: run ${{inputs.d}} $[[--x ${{inputs.x}}]]\n"
        "inputs: {d: {path: 'https://example.com/a.csv', mode: direct}, x: }\n"
    )
    (proc,) = plan_launch(job, node(0), gang(1, 0), paths()).processes
    assert proc.argv[-1] == "run https://example.com/a.csv "


def test_a_gang_that_does_not_fit_is_refused() -> None:
    job = spec("command: x\nresources: {instance_count: 2}\n")
    with pytest.raises(LaunchError, match="asks for 2 node"):
        plan_launch(job, node(0), gang(1, 0), paths())


def test_an_unstaged_input_is_a_launch_error() -> None:
    job = spec("command: cat ${{inputs.d}}\ninputs: {d: {path: 'azureml://datastores/s/paths/x'}}\n")
    with pytest.raises(LaunchError, match="no staged path"):
        plan_launch(job, node(0), gang(1, 0), paths())
