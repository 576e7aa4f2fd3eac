"""`trainstack review --base-ref` and `trainstack diff stack@ref` on a real temporary git
repository whose second commit changes prod: a cluster's VM size (a replace), a new cluster
(a create, with its cost), a public storage account (an update and a new mandatory finding),
and a reworded component (an update that only the ref's own components can show).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from components.skus import find_sku
from tests.review.gitrepo import change_prod, git, project_repo
from trainstack.cli import app
from trainstack.cost import HOURS_PER_MONTH
from trainstack.review_text import GITHUB_COMMENT_LIMIT

runner = CliRunner()
COMPUTE = "azure-native:machinelearningservices:Compute"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = project_repo(tmp_path_factory.mktemp("change") / "repo")
    change_prod(path)
    return path


@pytest.fixture(scope="module")
def review_json(repo: Path) -> tuple[int, dict, str]:
    code, out, err = run(
        "review", "--stack", "prod", "--base-ref", "HEAD~1", "--format", "json", "--project-dir", str(repo)
    )
    return code, json.loads(out), err


def test_cluster_with_a_new_vm_size_is_replaced_and_says_why(review_json: tuple[int, dict, str]) -> None:
    _, data, _ = review_json
    [replaced] = data["changes"]["replace"]
    assert (replaced["type"], replaced["name"]) == (COMPUTE, "a100-lowpri-compute")
    assert replaced["replace_reasons"] == [
        {
            "path": "properties.properties.vmSize",
            "source": "component",
            "rule": "properties.properties.vmSize",
        }
    ]
    assert replaced["delete_before_replace"] is True
    assert {
        "path": "properties.properties.vmSize",
        "before": "Standard_ND96amsr_A100_v4",
        "after": "Standard_ND96isr_H100_v5",
    } in replaced["changes"]


def test_new_cluster_is_created_with_its_cost(review_json: tuple[int, dict, str]) -> None:
    _, data, _ = review_json
    assert data["changes"]["create"] == [{"type": COMPUTE, "name": "h100-burst-compute"}]
    h100 = find_sku("Standard_ND96isr_H100_v5")
    assert h100 is not None
    monthly = round(h100.price_per_hour_usd * HOURS_PER_MONTH * 16, 2)
    [burst] = [c for c in data["cost"]["delta"]["by_resource"] if c["resource"] == "h100-burst-compute"]
    assert burst["action"] == "created" and burst["delta_max"] == monthly and burst["delta_min"] == 0
    assert burst["at_max"] == f"+ 16 × Standard_ND96isr_H100_v5 at max: +{monthly:,.2f} USD/month"
    before, after = data["cost"]["before"], data["cost"]["after"]
    assert round(after["monthly_max"] - before["monthly_max"], 2) == data["cost"]["delta"]["monthly_max"]
    assert data["cost"]["delta"]["monthly_max"] > monthly  # the A100 -> H100 move costs more too


def test_public_storage_is_an_update_and_a_finding_introduced_by_the_change(
    review_json: tuple[int, dict, str],
) -> None:
    code, data, err = review_json
    updates = {u["name"]: u["changes"] for u in data["changes"]["update"]}
    assert updates["mlw-trainstack-prod-storage"] == [
        {"path": "allowBlobPublicAccess", "before": False, "after": True}
    ]
    introduced = {(f["policy"], f["resource"]) for f in data["findings"]["introduced"]}
    assert ("storage-no-public-blob-access", "mlw-trainstack-prod-storage") in introduced
    assert all(f["policy"] != "storage-no-public-blob-access" for f in data["findings"]["existing"])
    assert data["passed"] is False and code == 1
    assert "storage-no-public-blob-access" in err


def test_the_base_is_planned_with_the_refs_own_components(review_json: tuple[int, dict, str]) -> None:
    _, data, _ = review_json
    updates = {u["name"]: u["changes"] for u in data["changes"]["update"]}
    # The dedicated cluster's stack entry did not change; the component that declares it did.
    assert updates["h100-dedicated-compute"] == [
        {
            "path": "properties.description",
            "before": "8 GPUs (Standard_ND96isr_H100_v5)",
            "after": "8 x H100 80GB SXM per node (Standard_ND96isr_H100_v5)",
        }
    ]


def test_github_comment_has_the_summary_first_and_fits(repo: Path) -> None:
    code, out, _ = run(
        "review", "--stack", "prod", "--base-ref", "HEAD~1", "--format", "github", "--project-dir", str(repo)
    )
    assert code == 1
    assert len(out) <= GITHUB_COMMENT_LIMIT
    assert out.startswith("<!-- trainstack-review:prod -->\n## trainstack review: `prod`")
    summary = out[: out.index("<details>")]
    assert "1 to create, 1 to replace" in summary and "**fails**" in summary
    assert (
        "| **replace** | `a100-lowpri-compute` |" in summary and "`properties.properties.vmSize`" in summary
    )
    assert "| create | `h100-burst-compute` |" in summary
    assert "`storage-no-public-blob-access`" in summary.split("introduced by this change")[-1]
    assert "+ 16 × Standard_ND96isr_H100_v5 at max:" in out
    assert out.count("<details>") == out.count("</details>")


def test_diff_against_a_ref_shows_replace_versus_update(repo: Path) -> None:
    code, out, _ = run("diff", "prod@HEAD~1", "prod", "--json", "--project-dir", str(repo))
    assert code == 0
    actions = {c["name_b"]: c["action"] for c in json.loads(out)["changed"]}
    assert actions["a100-lowpri-compute"] == "replace"
    assert actions["mlw-trainstack-prod-storage"] == "update"
    code, out, _ = run("diff", "prod@HEAD~1", "prod", "--project-dir", str(repo))
    assert "replace: a100-lowpri-compute" in out and "update: mlw-trainstack-prod-storage" in out
    assert "only in prod" in out and "h100-burst-compute" in out


def test_fail_on_replace(repo: Path) -> None:
    # HEAD~1 against itself plus the vm size change alone: no policy broken, only the replace.
    git(repo, "checkout", "--quiet", "-b", "vm-size-only", "HEAD~1")
    try:
        stack = repo / "stacks" / "Pulumi.prod.yaml"
        text = stack.read_text().replace(
            "vmSize: Standard_ND96amsr_A100_v4", "vmSize: Standard_ND96isr_H100_v5"
        )
        stack.write_text(text)
        args = ("review", "--stack", "prod", "--base-ref", "main~1", "--project-dir", str(repo))
        code, _, _ = run(*args)
        assert code == 0
        code, _, err = run(*args, "--fail-on-replace")
        assert code == 1 and "replaces a100-lowpri-compute" in err
    finally:
        git(repo, "checkout", "--quiet", "--force", "main")


def test_worktree_is_removed_after_the_review(repo: Path, review_json: tuple[int, dict, str]) -> None:
    assert git(repo, "worktree", "list").strip().count("\n") == 0  # only the repository itself


def test_unknown_ref_and_no_repository_exit_2(repo: Path, tmp_path: Path) -> None:
    code, _, err = run(
        "review", "--stack", "prod", "--base-ref", "no-such-branch", "--project-dir", str(repo)
    )
    assert code == 2 and "git does not know the ref 'no-such-branch'" in err and "git fetch" in err
    (tmp_path / "stacks").mkdir()
    code, _, err = run("review", "--stack", "prod", "--base-ref", "HEAD", "--project-dir", str(tmp_path))
    assert code == 2 and "is not inside a git repository" in err


def test_a_stack_new_in_the_change_is_all_creates(repo: Path) -> None:
    stack = repo / "stacks" / "Pulumi.staging.yaml"
    stack.write_text((repo / "stacks" / "Pulumi.dev.yaml").read_text())
    try:
        code, out, _ = run(
            "review",
            "--stack",
            "staging",
            "--base-ref",
            "HEAD",
            "--format",
            "json",
            "--project-dir",
            str(repo),
        )
        data = json.loads(out)
        assert code == 0 and data["base"]["missing"] is True
        assert data["changes"]["create"] and not data["changes"]["update"] and not data["changes"]["delete"]
        assert data["cost"]["before"]["monthly_max"] == 0
    finally:
        stack.unlink()


def test_broken_stack_at_the_ref_names_the_ref_and_the_field(repo: Path) -> None:
    git(repo, "checkout", "--quiet", "-b", "broken", "main")
    try:
        stack = repo / "stacks" / "Pulumi.prod.yaml"
        stack.write_text(
            stack.read_text().replace("minNodes: 0\n      maxNodes: 16", "minNodes: 0\n      maxNodez: 16")
        )
        git(repo, "commit", "--quiet", "--all", "-m", "typo")
        stack.write_text(stack.read_text().replace("maxNodez", "maxNodes"))
        code, _, err = run("review", "--stack", "prod", "--base-ref", "HEAD", "--project-dir", str(repo))
        assert code == 2
        assert "cannot be planned at HEAD" in err and "HEAD:stacks/Pulumi.prod.yaml" in err
        assert "maxNodez" in err
    finally:
        git(repo, "checkout", "--quiet", "--force", "main")


def test_base_and_base_ref_together_is_a_usage_error(repo: Path) -> None:
    code, _, err = run(
        "review", "--stack", "prod", "--base", "dev", "--base-ref", "HEAD", "--project-dir", str(repo)
    )
    assert code == 2 and "give one" in err
    code, _, err = run("review", "--stack", "prod", "--fail-on-replace", "--project-dir", str(repo))
    assert code == 2 and "--fail-on-replace needs --base-ref" in err


def test_a_crash_of_the_refs_program_names_its_file_and_line(repo: Path) -> None:
    git(repo, "checkout", "--quiet", "-b", "crash", "main")
    try:
        cluster = repo / "components" / "cluster.py"
        good = cluster.read_text()
        bad = good.replace("    credentials = None\n", "    raise RuntimeError('boom')\n", 1)
        assert bad != good
        cluster.write_text(bad)
        git(repo, "commit", "--quiet", "--all", "-m", "crash")
        cluster.write_text(good)
        code, _, err = run("review", "--stack", "prod", "--base-ref", "HEAD", "--project-dir", str(repo))
        assert code == 2
        assert re.search(r"failed: HEAD:components/cluster\.py:\d+: RuntimeError: boom", err), err
    finally:
        git(repo, "checkout", "--quiet", "--force", "main")
