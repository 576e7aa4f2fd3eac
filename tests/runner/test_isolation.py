"""A job reaches only its own run: its environment holds no store credential, it runs as the
image's unprivileged user (on the node and in containers), that user cannot reach the
metadata service, and the agent makes no path outside the attempt's folder."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from jobrunner.api import LaunchPlan, ProcessPlan
from jobrunner.errors import LaunchError
from jobrunner.node.isolation import JobUser, confined, hand_over, inherited, job_environment
from jobrunner.node.launch import ByLine, process_argv, run_plan

REPO = Path(__file__).resolve().parents[2]
GUARD = REPO / "packaging" / "guard-metadata.sh"
AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=c2VjcmV0;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def test_the_job_environment_keeps_the_plan_and_the_allow_list_and_drops_credentials() -> None:
    agent = {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "NCCL_DEBUG": "INFO",
        "JOBRUNNER_STORE": AZURITE,
        "JOBRUNNER_POOL": "p",
        "AZURE_CLIENT_ID": "id",
        "AZURE_STORAGE_CONNECTION_STRING": AZURITE,
        "AZURITE_ACCOUNTS": "devstoreaccount1:c2VjcmV0",
        "IDENTITY_ENDPOINT": "http://169.254.169.254",
        "MY_SECRET": "x",
        "HTTPS_PROXY": "https://user:pw@proxy:3128",
        "NCCL_SOCKET_IFNAME": "x?sig=abc",
        "HOME": "/root",
    }
    env = job_environment(agent, {"RANK": "0", "AZURE_TENANT_ID": "the job's own"})
    assert env == {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "NCCL_DEBUG": "INFO",
        "HOME": "/root",
        "RANK": "0",
        "AZURE_TENANT_ID": "the job's own",  # the job file's own variables pass as they are
    }
    user = JobUser("trainstack-job", 1000, 1000, "/home/trainstack-job")
    assert job_environment(agent, {}, user=user)["HOME"] == "/home/trainstack-job"
    assert not inherited("JOBRUNNER_CUDA_") and inherited("CUDA_VISIBLE_DEVICES")


def _env_of_a_real_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user: JobUser | None) -> str:
    monkeypatch.setenv("JOBRUNNER_STORE", AZURITE)
    monkeypatch.setenv("AZURE_CLIENT_ID", "node-identity")
    lines: list[str] = []
    plan = LaunchPlan(
        node="n",
        distribution="none",
        processes=(ProcessPlan(("bash", "-c", "id -u; env"), {"RANK": "0"}, str(tmp_path), "node-0"),),
    )
    result = run_plan(plan, ByLine(lambda _name, _stream, line: lines.append(line)), user=user)
    assert result.succeeded, lines
    return "\n".join(lines)


def test_a_job_process_sees_no_store_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _env_of_a_real_process(tmp_path, monkeypatch, None)
    assert "RANK=0" in out
    assert "JOBRUNNER_STORE" not in out and "AccountKey" not in out and "AZURE_CLIENT_ID" not in out


@as_root
def test_a_job_process_runs_as_the_job_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = JobUser.resolve("nobody")
    tmp_path.chmod(0o755)
    out = _env_of_a_real_process(tmp_path, monkeypatch, user)
    assert out.splitlines()[0] == str(user.uid)
    assert f"USER={user.name}" in out and "JOBRUNNER_STORE" not in out


@as_root
def test_the_job_user_gets_the_attempts_writable_folders_and_nothing_else(tmp_path: Path) -> None:
    user = JobUser.resolve("nobody")
    root = tmp_path / "attempt"
    (root / "code" / "pkg").mkdir(parents=True)
    (root / "code" / "pkg" / "m.py").write_text("")
    (root / "spool").mkdir()
    (root / "code" / "link").symlink_to("/etc/passwd")
    hand_over(user, [str(root / "code"), str(root / "missing")])
    assert (root / "code" / "pkg" / "m.py").stat().st_uid == user.uid
    assert os.lstat(root / "code" / "link").st_uid == user.uid
    assert Path("/etc/passwd").stat().st_uid == 0  # a link is changed, never followed
    # the attempt's root and the agent's log spool stay the agent's: the job cannot swap them
    assert root.stat().st_uid == 0 and (root / "spool").stat().st_uid == 0


def test_the_agent_follows_no_link_a_job_left_in_its_folders(tmp_path: Path) -> None:
    """Root writes Batch AI's log copies and the plan's files into the job's folders, and reads
    the job's error file: a link there must not lead it elsewhere."""
    from jobrunner.node.batchai_runtime import BatchAiLogFiles
    from jobrunner.node.isolation import read_job_file

    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "stdout-wk-0.txt").symlink_to(victim)
    with BatchAiLogFiles(logs) as files:
        files("node-0", "stdout", "a line the job printed")
    assert victim.read_text() == "untouched\n"
    (tmp_path / "hostfile").symlink_to(victim)
    with pytest.raises(LaunchError, match="cannot write"):
        run_plan(
            LaunchPlan(node="n", distribution="none", processes=(), files={str(tmp_path / "hostfile"): "x"}),
            lambda *_: None,
        )
    assert victim.read_text() == "untouched\n"
    (tmp_path / "error.json").symlink_to(victim)
    assert read_job_file(tmp_path / "error.json") is None
    assert read_job_file(victim) == "untouched\n"


def test_containers_get_the_job_user_and_host_processes_switch_to_it() -> None:
    user = JobUser("trainstack-job", 1001, 1002, "/home/trainstack-job")
    docker = ProcessPlan(("docker", "run", "--rm", "img", "python", "x.py"), {}, "/w", "node-0")
    argv, popen = process_argv(docker, user)
    assert argv[:4] == ["docker", "run", "--user", "1001:1002"] and popen == {}
    host = ProcessPlan(("bash", "-c", "true"), {}, "/w", "node-0")
    assert process_argv(host, user) == (
        ["bash", "-c", "true"],
        {"user": 1001, "group": 1002, "extra_groups": []},
    )
    assert process_argv(host, None) == (["bash", "-c", "true"], {})


def test_the_job_user_must_exist_and_not_be_root() -> None:
    with pytest.raises(LaunchError, match="does not exist"):
        JobUser.resolve("no-such-user-here")
    if os.geteuid() == 0:
        with pytest.raises(LaunchError, match="is root"):
            JobUser.resolve("root")


def test_every_path_is_confined_to_the_attempt(tmp_path: Path) -> None:
    root = str(tmp_path / "attempt")
    assert confined(root, "inputs", "data") == f"{root}/inputs/data"
    assert confined(root, "mounts", "store", "a/./b") == f"{root}/mounts/store/a/b"
    for parts in (("/etc",), ("..", "other"), ("inputs", "../../x"), ("/root/.ssh",)):
        with pytest.raises(LaunchError, match="outside the attempt"):
            confined(root, *parts)


def needs_netns(test: Callable[..., None]) -> Callable[..., None]:
    """Root and the tools `make setup` installs (under CI a missing one fails the test)."""
    for mark in (
        pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace needs root"),
        pytest.mark.needs_tool("iptables", "iptables"),
        pytest.mark.needs_tool("ip", "iproute2"),
        pytest.mark.needs_tool("unshare", "util-linux"),
    ):
        test = mark(test)
    return test


_PROBE = """
import socket, sys
s = socket.socket()
s.settimeout(3)
try:
    s.connect(("169.254.169.254", 80))
    print("connected")
except ConnectionRefusedError:
    print("refused")
except (TimeoutError, socket.timeout):
    print("timeout")
except OSError as exc:
    print("error", exc)
"""


_LISTEN = (
    "import socket; s = socket.socket(); s.bind(('169.254.169.254', 80)); s.listen(8); "
    "[s.accept() for _ in range(8)]"
)


@needs_netns
def test_the_image_guard_refuses_the_job_user_the_metadata_service_and_only_that_user(tmp_path: Path) -> None:
    """In a scratch network namespace where something listens at 169.254.169.254:80: after the
    guard, root still connects and the job user is refused. Applying the guard twice adds one
    rule."""
    py = shutil.which("python3", path="/usr/bin:/bin") or sys.executable  # one the job user can run
    probe = tmp_path / "probe.py"
    probe.write_text(_PROBE)  # read by the root shell's redirect: the job user needs no access
    script = f"""
set -e
ip link set lo up
ip addr add 169.254.169.254/32 dev lo
{py} -c "{_LISTEN}" >/dev/null 2>&1 &
listener=$!
trap 'kill $listener' EXIT
sleep 0.5
echo before=$(setpriv --reuid=nobody --regid=nogroup --clear-groups {py} - < {probe})
bash {GUARD} nobody
bash {GUARD} nobody
echo rules=$(iptables -S OUTPUT | grep -c 169.254.169.254)
echo root=$({py} {probe})
echo job=$(setpriv --reuid=nobody --regid=nogroup --clear-groups {py} - < {probe})
"""
    done = subprocess.run(
        ["unshare", "--net", "bash", "-c", script], capture_output=True, text=True, timeout=60
    )
    if "Operation not permitted" in done.stderr or "can't initialize iptables" in done.stderr:
        pytest.skip(f"no network namespaces or netfilter here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    out = dict(line.split("=", 1) for line in done.stdout.split() if "=" in line)
    assert out == {"before": "connected", "rules": "1", "root": "connected", "job": "refused"}, (
        done.stdout + done.stderr
    )


def test_the_agent_unit_applies_the_guard_before_it_starts() -> None:
    unit = (REPO / "packaging" / "jobrunner-agent.service").read_text()
    start_pre = [line for line in unit.splitlines() if line.startswith("ExecStartPre=")]
    assert start_pre == ["ExecStartPre=/usr/local/lib/jobrunner/guard-metadata.sh"]
    install = (REPO / "packaging" / "install-agent.sh").read_text()
    assert 'install -m 0755 "$guard" "$guard_dir/guard-metadata.sh"' in install
    assert "useradd --system" in install


def test_run_plan_refuses_to_start_when_it_cannot_switch(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can switch to any user")
    with pytest.raises(LaunchError, match="not root"):
        JobUser.resolve("nobody")  # the attempt reports it as an infrastructure failure


@as_root
def test_a_pool_agent_runs_its_job_as_the_job_user_in_folders_handed_to_it(
    azurite: str, tmp_path: Path
) -> None:
    """A real agent (job user `nobody`) over Azurite: the job's uid is the user's, it writes its
    outputs, and cannot write the agent's own folder of the attempt (the log spool)."""
    import tempfile

    from jobrunner.api import JobState
    from jobrunner.client import Client
    from jobrunner.node.agent import AgentSettings
    from jobrunner.node.attempt import Timing
    from jobrunner.store.client import Store
    from tests.runner.agents import run_to_end

    work = Path(tempfile.mkdtemp(prefix="jobrunner-isolation-", dir="/tmp"))
    work.chmod(0o755)  # a node's work dir is reachable; pytest's own tmp is root-only
    try:
        store = Store.connect(azurite)
        pool = "job-user"
        client = Client(store, pool=pool)
        job = tmp_path / "job.yml"
        job.write_text(
            "command: >-\n"
            "  id -u > ${{outputs.out}}/uid.txt;\n"
            "  (echo x > ../spool/evil && echo wrote || echo refused)\n"
            "  > ${{outputs.out}}/spool.txt 2>/dev/null\n"
            "experiment_name: job-user\n"
            "outputs:\n  out: {type: uri_folder}\n"
        )
        run = client.submit(job)
        settings = AgentSettings(
            pool=pool, name=f"{pool}-0", work_dir=work, job_user="nobody",
            timing=Timing(status_poll_s=0.2, sync_s=60),
        )  # fmt: skip
        run_to_end(store, settings, run.id)
        final = client.status(run.id)
        assert final.state is JobState.SUCCEEDED, final
        attempt = work / "runs" / run.id / "1"
        assert (attempt / "outputs" / "out" / "uid.txt").read_text().strip() == str(
            JobUser.resolve("nobody").uid
        )
        assert (attempt / "outputs" / "out" / "spool.txt").read_text().strip() == "refused"
        assert not (attempt / "spool" / "evil").exists()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_an_output_swapped_for_a_link_is_not_uploaded(azurite: str, tmp_path: Path) -> None:
    """The job owns its output folders: a file it turns into a link to a root-only file after
    the listing must not go up as the agent (root) reads it."""
    from jobrunner.store.client import Store

    store = Store.connect(azurite)
    secret = tmp_path / "root-only"
    secret.write_text("the node's secret")
    link = tmp_path / "out.txt"
    link.symlink_to(secret)
    with pytest.raises(OSError) as caught:
        store.upload_file("swap-test", "out.txt", link, follow_links=False)
    assert caught.value.errno == errno.ELOOP
    assert store.list("swap-test", "") == []
    store.upload_file("swap-test", "mine.txt", secret)  # a person's own upload still follows links
    assert [b.name for b in store.list("swap-test", "")] == ["mine.txt"]
