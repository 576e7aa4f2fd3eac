"""The agent config file: the model, the cloud-init and base64 forms the pool writes, the
errors a person sees, node setup once per boot, the pool size published for submit."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobrunner.cli.main import app
from jobrunner.errors import ConfigError
from jobrunner.node.config import (
    AgentConfig,
    DatastoreLocation,
    custom_data,
    load_agent_config,
    parse_agent_config,
    render_cloud_init,
)
from jobrunner.node.pool_agent import (
    SETUP_LOG,
    NodeSetupError,
    agent_settings,
    node_setup_once,
    publish_pool_size,
)
from jobrunner.store.client import Store
from jobrunner.store.pool_config import PoolConfig, read_pool_config

ROOT = Path(__file__).resolve().parents[2]
URL = "https://stpool123.blob.core.windows.net"


def config(**extra: object) -> AgentConfig:
    return AgentConfig.model_validate({"store": URL, "pool": "a100-spot", "maxNodes": 4, **extra})


def test_cloud_init_and_its_base64_read_back_as_the_same_config(tmp_path: Path) -> None:
    original = config(
        nodeSetup="apt-get install -y nfs-common\nmount -a\n",
        datastores={"training_data": {"container": "training-data"}},
        identityClientId="0ee83b1b-3a13-534e-838f-0b42dcf4150b",
    )
    document = render_cloud_init(original)
    assert document.startswith("#cloud-config\n")
    for name, text in (("ci.yaml", document), ("custom-data.b64", custom_data(original))):
        path = tmp_path / name
        path.write_text(text)
        assert load_agent_config(path) == original
    assert base64.b64decode(custom_data(original)).decode() == document


def test_a_plain_yaml_file_reads_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(f"store: {URL}/\npool: a100-spot\n")
    loaded = load_agent_config(path)
    assert loaded.store == URL and loaded.store_account == "stpool123"
    assert loaded.scheduled_events_url == "http://169.254.169.254/metadata/scheduledevents"
    assert loaded.max_nodes is None and loaded.datastores == {}
    mapped = config(datastores={"raw_data": {"container": "raw-data"}})
    assert mapped.datastores == {"raw_data": DatastoreLocation(container="raw-data")}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("store: x\npool: a100-spot\n", "store: not a job store"),
        (f"store: {URL}\npool: A100_Spot\n", "pool: invalid pool name 'A100_Spot'"),
        (f"store: {URL}\npool: p1\nmaxNode: 3\n", "unknown key `maxNode` (did you mean `maxNodes`?)"),
        (f"store: {URL}\npool: p1\nworkDir: work\n", "workDir: 'work' is not an absolute path"),
        (f"store: {URL}\npool: p1\nheartbeatS: 60\nstaleAfterS: 30\n", "must be larger than heartbeatS"),
        (f"store: {URL}\npool: p1\ndatastores: {{d: {{container: Bad_Name}}}}\n", "datastores.d.container"),
        ("#cloud-config\nwrite_files: []\n", "writes no /etc/jobrunner/agent.yaml"),
        ("- a\n- b\n", "must be a mapping"),
    ],
)
def test_problems_name_the_file_and_field(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_agent_config(path)
    assert needle in str(caught.value) and str(path) in str(caught.value)


def test_errors_inside_cloud_init_say_where_the_file_is() -> None:
    document = "#cloud-config\nwrite_files:\n- path: /etc/jobrunner/agent.yaml\n  content: |\n    pool: p1\n"
    with pytest.raises(ConfigError, match=r"custom-data \(/etc/jobrunner/agent.yaml in write_files\): store"):
        parse_agent_config(document, source="custom-data")


def test_base64_content_in_write_files_is_decoded() -> None:
    content = base64.b64encode(f"store: {URL}\npool: p1\n".encode()).decode()
    document = (
        "#cloud-config\nwrite_files:\n- path: /etc/jobrunner/agent.yaml\n"
        f"  encoding: b64\n  content: {content}\n"
    )
    assert parse_agent_config(document, source=None).pool == "p1"


def test_check_config_command_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "custom-data"
    good.write_text(custom_data(config()))
    result = CliRunner().invoke(app, ["agent", "--check-config", str(good), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid"] and report["config"]["pool"] == "a100-spot" and report["config"]["maxNodes"] == 4
    human = CliRunner().invoke(app, ["agent", "--check-config", str(good)])
    assert human.exit_code == 0 and "pool-a100-spot" in human.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"store: {URL}\npol: a100\n")
    result = CliRunner().invoke(app, ["agent", "--check-config", str(bad)])
    assert result.exit_code == 1
    assert "unknown key `pol`" in result.stderr and "Traceback" not in result.output
    missing = CliRunner().invoke(app, ["agent"])
    assert missing.exit_code == 1 and "--pool NAME or --config FILE" in missing.stderr


def test_node_setup_runs_once_per_boot_and_logs_its_output(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    cfg = config(runDir=str(tmp_path / "run"), nodeSetup=f"echo setting up; echo x >> {counter}")
    assert node_setup_once(cfg) is True
    assert node_setup_once(cfg) is False  # an agent restart: the marker says it ran
    assert counter.read_text().count("x") == 1
    assert "setting up" in (tmp_path / "run" / SETUP_LOG).read_text()
    changed = cfg.model_copy(update={"node_setup": f"echo y >> {counter}"})
    assert node_setup_once(changed) is True  # a new command runs again
    (tmp_path / "run" / "node-setup.done").unlink()  # a reboot empties /run
    assert node_setup_once(changed) is True
    assert counter.read_text().splitlines() == ["x", "y", "y"]
    assert node_setup_once(config(runDir=str(tmp_path / "run"))) is False  # nothing to run


def test_failing_or_hanging_node_setup_is_retried_on_the_next_start(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    failing = config(runDir=str(run_dir), nodeSetup="echo broken >&2; exit 3")
    with pytest.raises(NodeSetupError, match="exited with 3"):
        node_setup_once(failing)
    assert not (run_dir / "node-setup.done").exists()
    assert "broken" in (run_dir / SETUP_LOG).read_text()
    hanging = config(runDir=str(run_dir), nodeSetup="sleep 30", nodeSetupTimeoutS=1)
    with pytest.raises(NodeSetupError, match="ran past 1 s"):
        node_setup_once(hanging)


def test_runtime_settings_follow_the_file() -> None:
    loop = agent_settings(
        config(name="vm-3", address="10.0.0.7", workDir="/mnt/w", heartbeatS=10, staleAfterS=40)
    )
    assert (loop.pool, loop.name, loop.address, str(loop.work_dir)) == (
        "a100-spot",
        "vm-3",
        "10.0.0.7",
        "/mnt/w",
    )
    assert loop.protocol.beat_idle_s == 10 and loop.protocol.stale_after_s == 40
    assert loop.protocol.fence_s < loop.protocol.stale_after_s  # cut off: it stops before it is lost
    assert loop.scheduled_events_url == "http://169.254.169.254/metadata/scheduledevents"
    assert agent_settings(config(scheduledEventsUrl=None)).scheduled_events_url is None


def test_the_pool_size_is_published_for_submit(azurite: str) -> None:
    store = Store.connect(azurite)
    cfg = AgentConfig(store=azurite, pool="published-pool", max_nodes=6)
    assert publish_pool_size(store, cfg) is True
    assert read_pool_config(store, "published-pool") == PoolConfig(
        name="published-pool", max_nodes=6, kind="vmss"
    )
    assert publish_pool_size(store, cfg.model_copy(update={"pool": "silent", "max_nodes": None})) is False
    assert read_pool_config(store, "silent") is None


@pytest.mark.slow
def test_agent_from_a_cloud_init_config_sets_up_the_node_and_serves(azurite: str, tmp_path: Path) -> None:
    """The real command a pool node runs, against Azurite: setup, pool size, heartbeat, stop."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from jobrunner.node.facts import container_runtime_works
    from jobrunner.scheduler.azure_store import AzurePoolStore
    from jobrunner.scheduler.report import read_nodes

    marker = tmp_path / "setup-ran"
    cfg = AgentConfig(
        store=azurite, pool="cloud-init-pool", max_nodes=3, name="vm-0", address="127.0.0.1",
        work_dir=str(tmp_path / "work"), run_dir=str(tmp_path / "run"), node_setup=f"touch {marker}",
        scheduled_events_url=None, heartbeat_s=1, stale_after_s=5,
    )  # fmt: skip
    path = tmp_path / "custom-data"
    path.write_text(render_cloud_init(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobrunner", "agent", "--config", str(path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k != "JOBRUNNER_STORE"},
    )  # fmt: skip
    store = Store.connect(azurite)
    sched = AzurePoolStore(store, "cloud-init-pool")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not read_nodes(sched):
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.3)
        (record,) = read_nodes(sched)
        assert record.name == "vm-0" and record.state == "idle"
        assert marker.exists()
        assert read_pool_config(store, "cloud-init-pool") == PoolConfig(
            name="cloud-init-pool", max_nodes=3, kind="vmss", containers=container_runtime_works()
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "node setup done" in stderr and "serving pool cloud-init-pool" in stderr
    assert read_nodes(sched)[0].state == "stopped"
