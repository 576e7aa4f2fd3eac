"""`trainstack review` and `trainstack diff` on real stack files, run offline through the
Pulumi program under mocks: golden snapshots for the stacks in `stacks/`, an insecure stack
that breaks many policies at once, and a stack on a retired GPU size.

Snapshots are regenerated with `TRAINSTACK_UPDATE_GOLDEN=1 pytest tests/review`; review the
change like code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trainstack.cli import app
from trainstack.review_text import GITHUB_COMMENT_LIMIT, clip

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
HERE_STACKS = Path(__file__).parent / "stacks"
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("TRAINSTACK_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}: run with TRAINSTACK_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} changed: rerun with TRAINSTACK_UPDATE_GOLDEN=1 and review"
    )


@pytest.fixture(scope="module")
def test_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's program with the stack files of these tests."""
    project = tmp_path_factory.mktemp("project")
    for name in ("__main__.py", "Pulumi.yaml"):
        (project / name).symlink_to(ROOT / name)
    shutil.copytree(HERE_STACKS, project / "stacks")
    return project


# The shipped stacks break no mandatory policy: their reviews pass (the insecure stack below
# is the one that fails).
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_review_markdown_matches_snapshot(stack: str) -> None:
    code, out, err = run("review", "--stack", stack, "--project-dir", str(ROOT))
    check_golden(f"review-{stack}.md", out)
    assert "monthly at max" in out and "USD/month" in out
    assert code == 0, err
    assert "#### Mandatory" not in out and "Policies: passes" in out


def test_review_prod_against_dev_matches_snapshot() -> None:
    _, out, _ = run("review", "--stack", "prod", "--base", "dev", "--project-dir", str(ROOT))
    check_golden("review-prod-base-dev.md", out)
    assert "### Compared with `dev`" in out
    # Another stack's workspace is another Azure resource: its name is part of the id.
    assert "**Replace:** `mlw-trainstack-dev-workspace → mlw-trainstack-prod-workspace`" in out
    assert "`workspaceName` (part of the Azure resource id" in out


def test_review_github_format_is_one_comment_with_its_marker(test_project: Path) -> None:
    code, out, _ = run(
        "review", "--stack", "insecure", "--format", "github", "--project-dir", str(test_project)
    )
    assert code == 1
    assert out.startswith("<!-- trainstack-review:insecure -->\n## trainstack review: `insecure`")
    assert len(out) <= GITHUB_COMMENT_LIMIT and "#### Mandatory (11)" in out


def test_clip_cuts_at_a_line_and_says_so() -> None:
    text = "".join(f"line {i:04}\n" for i in range(2000))
    assert clip(text, len(text)) == text
    cut = clip(text, 1000)
    assert len(cut) <= 1000 and cut.startswith("line 0000\nline 0001\n")
    assert re.search(r"_Cut to fit one comment \(1,000 characters\): \d+ line\(s\) left out", cut)


def test_review_json_shape() -> None:
    code, out, _ = run("review", "--stack", "dev", "--format", "json", "--project-dir", str(ROOT))
    data = json.loads(out)
    assert {"stack", "resources", "cost", "findings"} <= data.keys() and data["stack"] == "dev"
    assert {"monthly_min", "monthly_max", "currency"} <= data["cost"].keys()
    assert data["cost"]["monthly_max"] > 0 and data["cost"]["currency"] == "USD"
    for finding in data["findings"]:
        assert {"policy", "severity", "resource", "message"} <= finding.keys()
    assert code == (0 if data["passed"] else 1)
    assert all(
        line["price_region"] and line["price_date"] for line in data["cost"]["lines"] if line["vm_size"]
    )


def test_insecure_stack_fails_and_names_each_problem(test_project: Path) -> None:
    code, out, err = run(
        "review", "--stack", "insecure", "--format", "json", "--project-dir", str(test_project)
    )
    assert code == 1
    found = {
        (f["policy"], f["resource"]) for f in json.loads(out)["findings"] if f["severity"] == "mandatory"
    }
    assert found == {
        ("compute-ssh-private-in-prod", "open-ssh-compute"),
        ("compute-no-public-ip", "open-ssh-compute"),
        ("storage-no-public-blob-access", "mlw-insecure-storage"),
        ("storage-private-network", "mlw-insecure-storage"),
        ("storage-no-shared-key", "mlw-insecure-storage"),  # the account-key datastore keeps it on
        ("keyvault-private-network", "mlw-insecure-vault"),
        ("workspace-no-public-network", "mlw-insecure-workspace"),
        ("datastore-identity-access", "keyed-datastore"),
        ("evictable-scales-from-zero", "open-ssh-compute"),  # raised to mandatory by trainstack:policies
        ("monthly-budget", "(stack)"),
        ("gpu-sku-not-retired", "open-ssh-compute"),
    }
    assert "mandatory policies broken" in err and "compute-ssh-private-in-prod" in err


def test_insecure_stack_markdown_groups_findings(test_project: Path) -> None:
    code, out, _ = run("review", "--stack", "insecure", "--project-dir", str(test_project))
    assert code == 1
    assert "**fails**" in out and "#### Mandatory (11)" in out
    assert "public SSH on production nodes" in out and "anonymous public read access" in out
    assert "Standard_NC6s_v3 was retired" in out


def test_prod_stack_passes_with_private_data_planes_and_scoped_roles() -> None:
    code, out, _ = run("review", "--stack", "prod", "--format", "json", "--project-dir", str(ROOT))
    assert code == 0 and json.loads(out)["passed"] is True


def test_review_fails_a_pool_whose_identity_holds_an_account_wide_role(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The pool's data roles as they were before container and queue scope: on the account."""
    import components.gpu_pool as gpu_pool

    def account_wide(pool: str, datastores: dict[str, str]) -> list[tuple[str, str, str]]:
        return [("blob-data", gpu_pool.roles.STORAGE_BLOB_DATA_CONTRIBUTOR, "")]

    monkeypatch.setattr(gpu_pool, "data_scopes", account_wide)
    code, out, _ = run("review", "--stack", "pool", "--format", "json", "--project-dir", str(ROOT))
    assert code == 1
    found = [f for f in json.loads(out)["findings"] if f["policy"] == "identity-least-privilege"]
    assert [f["resource"] for f in found] == ["a100-spot-blob-data"]
    assert found[0]["severity"] == "mandatory" and "whole account" in found[0]["message"]


def test_review_fails_a_prod_workspace_whose_storage_is_public(test_project: Path) -> None:
    text = (ROOT / "stacks" / "Pulumi.prod.yaml").read_text()
    public = text.replace("publicNetworkAccess: false", "publicNetworkAccess: true")
    (test_project / "stacks" / "Pulumi.public.yaml").write_text(public)
    if not (test_project / "stacks" / "jobs").exists():
        (test_project / "stacks" / "jobs").symlink_to(ROOT / "stacks" / "jobs")
    code, out, _ = run("review", "--stack", "public", "--format", "json", "--project-dir", str(test_project))
    assert code == 1
    found = {
        (f["policy"], f["resource"]) for f in json.loads(out)["findings"] if f["severity"] == "mandatory"
    }
    assert ("storage-private-network", "mlw-trainstack-prod-storage") in found
    assert ("storage-private-network", "lake-account") in found
    assert ("keyvault-private-network", "mlw-trainstack-prod-vault") in found


def test_retired_gpu_size_is_a_finding_with_its_successor(test_project: Path) -> None:
    code, out, _ = run("review", "--stack", "retired", "--format", "json", "--project-dir", str(test_project))
    assert code == 1
    [finding] = [f for f in json.loads(out)["findings"] if f["policy"] == "gpu-sku-not-retired"]
    assert finding["resource"] == "v100-compute" and finding["severity"] == "mandatory"
    assert "Standard_NC6s_v3" in finding["message"] and "Standard_NC24ads_A100_v4" in finding["message"]


def test_unknown_policy_override_is_a_config_error(test_project: Path) -> None:
    path = test_project / "stacks" / "Pulumi.typo.yaml"
    text = (test_project / "stacks" / "Pulumi.insecure.yaml").read_text()
    path.write_text(text.replace("evictable-scales-from-zero: mandatory", "storage-tls-12: advisory"))
    code, _, err = run("review", "--stack", "typo", "--project-dir", str(test_project))
    assert code == 2
    assert "trainstack:policies.storage-tls-12" in err and "did you mean `storage-tls12`?" in err


def test_unknown_stack() -> None:
    code, _, err = run("review", "--stack", "nope", "--project-dir", str(ROOT))
    assert code == 2 and "no stack named 'nope'" in err


def test_diff_dev_prod_lists_cluster_and_workspace_changes() -> None:
    code, out, _ = run("diff", "dev", "prod", "--json", "--project-dir", str(ROOT))
    assert code == 0
    data = json.loads(out)
    check_golden("diff-dev-prod.json", out)
    by_type: dict[str, list[dict]] = {}
    for change in data["changed"]:
        by_type.setdefault(change["type"], []).append(change)
    [workspace] = by_type["azure-native:machinelearningservices:Workspace"]
    assert {"path": "publicNetworkAccess", "a": "Enabled", "b": "Disabled"} in workspace["changes"]
    clusters = by_type["azure-native:machinelearningservices:Compute"]
    paths = {c["path"] for cluster in clusters for c in cluster["changes"]}
    assert "properties.properties.vmSize" in paths


def test_diff_human_output_shows_paths_and_both_values() -> None:
    code, out, _ = run("diff", "dev", "prod", "--project-dir", str(ROOT))
    assert code == 0
    assert "replace: mlw-trainstack-dev-workspace → mlw-trainstack-prod-workspace" in out
    assert "part of the Azure resource id" in out  # workspaceName differs: another resource
    assert "publicNetworkAccess" in out and "Disabled" in out and "only in prod" in out


def test_diff_of_a_stack_with_itself() -> None:
    code, out, _ = run("diff", "dev", "dev", "--project-dir", str(ROOT))
    assert code == 0 and "declare the same resources" in out
