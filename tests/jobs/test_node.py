"""Node facts from the programs the node has, with stand-in `nvidia-smi` and `docker`
scripts on PATH for the cases this machine cannot show."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner.node.facts import detect_node_facts


def tool(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script, encoding="utf-8")
    path.chmod(0o755)


def test_this_machine_without_gpus_or_docker_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A docker binary that cannot reach an engine, as on this machine: it does not count.
    tool(tmp_path, "docker", "echo 'Cannot connect to the Docker daemon' >&2; exit 1")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    facts = detect_node_facts("local-0", "127.0.0.1")
    assert (facts.name, facts.address, facts.gpus, facts.gpu_model) == ("local-0", "127.0.0.1", 0, None)
    assert facts.cpus >= 1
    assert facts.container_runtime is False


def test_gpus_and_a_working_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tool(tmp_path, "nvidia-smi", "printf 'NVIDIA A100 80GB PCIe\\nNVIDIA A100 80GB PCIe\\n'")
    tool(tmp_path, "docker", "echo 27.1.1")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    facts = detect_node_facts("gpu-0", "10.0.0.4")
    assert facts.gpus == 2 and facts.gpu_model == "NVIDIA A100 80GB PCIe"
    assert facts.container_runtime is True


def test_a_broken_nvidia_smi_means_no_gpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tool(tmp_path, "nvidia-smi", "echo 'NVIDIA-SMI has failed' ; exit 9")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert detect_node_facts("n", "a").gpus == 0
