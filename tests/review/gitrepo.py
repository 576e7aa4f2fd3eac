"""A real, temporary git repository holding a copy of the project (program, components,
stacks, job files, the image's packaging), for reviews against a git ref. `change_prod` is the
change a reviewer would see in a pull request: one cluster's VM size, a new cluster, a public
storage account.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("__main__.py", "Pulumi.yaml", "components", "stacks", "packaging")

NEW_CLUSTER = """\
    - name: h100-burst
      vmSize: Standard_ND96isr_H100_v5
      priority: Dedicated
      minNodes: 0
      maxNodes: 16
      idleSecondsBeforeScaleDown: 600
      subnetId: {subnet}
      remoteLogin: false
      nodePublicIp: false
"""
SUBNET = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-network-prod/providers/"
    "Microsoft.Network/virtualNetworks/vnet-training/subnets/snet-aml"
)
# The base's GPU cluster component words its description differently: the review must
# plan the base with the base's components, so this shows as an in-place update.
OLD_DESCRIPTION = 'description=f"{config.sku.gpus} GPUs ({config.sku.name})",'
NEW_DESCRIPTION = 'description=f"{config.sku.gpus} x {config.sku.gpu_model} per node ({config.sku.name})",'


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def project_repo(path: Path) -> Path:
    """`path` as a git repository with the project's files committed once (on `main`)."""
    path.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, path / name)
    cluster = path / "components" / "cluster.py"
    text = cluster.read_text(encoding="utf-8")
    assert NEW_DESCRIPTION in text, "components/cluster.py changed: update tests/review/gitrepo.py"
    cluster.write_text(text.replace(NEW_DESCRIPTION, OLD_DESCRIPTION), encoding="utf-8")
    git(path, "init", "--quiet", "--initial-branch=main")
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", "base")
    return path


def change_prod(repo: Path) -> None:
    """The second commit: the low-priority cluster moves to H100, a 16-node H100 cluster is
    added, the workspace's storage account allows public blob access, the component's
    description is reworded back."""
    cluster = repo / "components" / "cluster.py"
    cluster.write_text(cluster.read_text().replace(OLD_DESCRIPTION, NEW_DESCRIPTION), encoding="utf-8")
    stack = repo / "stacks" / "Pulumi.prod.yaml"
    text = stack.read_text(encoding="utf-8")
    for old, new in (
        ("vmSize: Standard_ND96amsr_A100_v4", "vmSize: Standard_ND96isr_H100_v5"),
        ("    allowBlobPublicAccess: false", "    allowBlobPublicAccess: true"),
        ("  trainstack:datastores:", NEW_CLUSTER.format(subnet=SUBNET) + "  trainstack:datastores:"),
    ):
        assert old in text, f"stacks/Pulumi.prod.yaml no longer has {old!r}: update tests/review/gitrepo.py"
        text = text.replace(old, new, 1)
    stack.write_text(text, encoding="utf-8")
    git(repo, "commit", "--quiet", "--all", "-m", "prod: H100 for the low-priority cluster, a burst cluster")
