"""The agent as a node gets it: `packaging/build-wheel.sh` builds the jobrunner wheel alone,
`packaging/install-agent.sh` installs it into a fresh virtualenv (its pinned dependencies
from the package index), and the installed `jobrunner agent --check-config` accepts the
scale set's custom data. The systemd unit passes `systemd-analyze verify`."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from components.config import GpuPoolConfig
from components.gpu_pool import agent_config
from jobrunner.node.config import custom_data

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
POOL = {
    "name": "a100-spot",
    "vmSize": "Standard_NC24ads_A100_v4",
    "maxNodes": 4,
    "subnetId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/g",
    "nodeSetup": "nvidia-smi -pm 1",
    "ssh": {"adminUser": "azureuser", "publicKey": "ssh-ed25519 AAAA"},
}


def build_wheel(out: Path) -> Path:
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(
        ["bash", str(PACKAGING / "build-wheel.sh"), str(out)], check=True, env=env, capture_output=True
    )
    (wheel,) = out.glob("jobrunner-*-py3-none-any.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("dist"))


def test_the_wheel_holds_jobrunner_alone_and_pins_its_dependencies(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"jobrunner"}
    assert "jobrunner/node/config.py" in names and not any("__pycache__" in n for n in names)
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert not any("pulumi" in r for r in requires)
    assert all("==" in r for r in requires if "extra ==" not in r)
    root = (ROOT / "pyproject.toml").read_text()
    for package in ("optuna", "scipy"):  # the pool's leader drives sweeps with them
        (pin,) = [
            r.removeprefix("Requires-Dist: ") for r in requires if r.startswith(f"Requires-Dist: {package}==")
        ]
        assert f'"{pin}"' in root  # the version development and tests use
    assert "jobrunner = jobrunner.cli.main:main" in entry_points


def test_the_wheel_is_reproducible(wheel: Path, tmp_path: Path) -> None:
    assert build_wheel(tmp_path).read_bytes() == wheel.read_bytes()


@pytest.mark.slow
def test_installed_agent_accepts_the_pools_custom_data(wheel: Path, tmp_path: Path) -> None:
    """About 10 s: a fresh virtualenv with the wheel and its dependencies from the index."""
    venv = tmp_path / "opt" / "venv"
    env = {
        **os.environ,
        "INSTALL_CONTAINER_RUNTIME": "0",
        "CREATE_JOB_USER": "0",
        "JOBRUNNER_GUARD_DIR": str(tmp_path / "guard"),
        "JOBRUNNER_VENV": str(venv),
        "JOBRUNNER_UNIT_DIR": str(tmp_path / "units"),
        "JOBRUNNER_CONFIG_DIR": str(tmp_path / "etc"),
        "PYTHON": shutil.which("python3") or sys.executable,
    }
    done = subprocess.run(
        ["bash", str(PACKAGING / "install-agent.sh"), str(wheel), str(PACKAGING / "jobrunner-agent.service")],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "units" / "jobrunner-agent.service").exists()
    config = agent_config(
        GpuPoolConfig.model_validate(POOL), account="stpool1", client_id="cid", datastores={"d": "data"}
    )
    decoded = tmp_path / "custom-data.yaml"
    decoded.write_bytes(base64.b64decode(custom_data(config)))
    checked = subprocess.run(
        [str(venv / "bin" / "jobrunner"), "agent", "--check-config", str(decoded), "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert '"pool": "a100-spot"' in checked.stdout and '"maxNodes": 4' in checked.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("pool: a100-spot\n")
    refused = subprocess.run(
        [str(venv / "bin" / "jobrunner"), "agent", "--check-config", str(broken)],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and "store: required field is missing" in refused.stderr
    # The installed package is the wheel, not this checkout.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import jobrunner, sys; print(jobrunner.__file__)"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert (
        str(venv) in where.stdout
        and "pulumi"
        not in subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "list"], capture_output=True, text=True, check=True
        ).stdout
    )


@pytest.mark.needs_tool("systemd-analyze", "systemd")
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = (PACKAGING / "jobrunner-agent.service").read_text()
    assert "Restart=always" in unit and "KillMode=mixed" in unit
    stop_timeout = int(
        next(line for line in unit.splitlines() if line.startswith("TimeoutStopSec=")).split("=")[1]
    )
    assert stop_timeout < 30  # inside a Spot eviction's notice
    assert "ExecStart=/opt/jobrunner/venv/bin/jobrunner agent --config /etc/jobrunner/agent.yaml" in unit
    # verify checks that ExecStart exists: point it at a stand-in executable.
    fake = tmp_path / "jobrunner"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    copy = tmp_path / "jobrunner-agent.service"
    guard = tmp_path / "guard-metadata.sh"
    guard.write_text("#!/bin/sh\n")
    guard.chmod(0o755)
    unit = unit.replace("/usr/local/lib/jobrunner/guard-metadata.sh", str(guard))
    copy.write_text(unit.replace("/opt/jobrunner/venv/bin/jobrunner", str(fake)))
    done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    bad = tmp_path / "bad.service"
    bad.write_text(
        unit.replace("Restart=always", "Restart=sometimes").replace(
            "/opt/jobrunner/venv/bin/jobrunner", str(fake)
        )
    )
    complaint = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True, text=True).stderr
    assert "restart specifier" in complaint
