"""The CrossGuard pack: the same rules, called the way the Pulumi analyzer calls them, and the
pack process itself starting its analyzer server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from policies import ALL_POLICIES, Severity, policy
from policies.pack import crossguard_policy, enforcement, stack_context
from tests.review import records as rec
from tests.review.records import cluster, deep

ROOT = Path(__file__).resolve().parents[2]
A = "properties.properties."


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], False, [], PolicyCustomTimeouts(0, 0, 0), [])


def _validate_resource(policy_id: str, resource, env: str = "prod") -> list[tuple[str, str | None]]:
    reported: list[tuple[str, str | None]] = []
    p = crossguard_policy(policy(policy_id), lambda: rec.ctx(env))
    args = ResourceValidationArgs(
        resource.type, resource.inputs, f"urn:{resource.name}", resource.name, _options(), None
    )
    p.validate(args, lambda message, urn=None: reported.append((message, urn)))
    return reported


def test_resource_policy_reports_with_the_resources_urn() -> None:
    open_blobs = deep(rec.storage(), allowBlobPublicAccess=True)
    [(message, urn)] = _validate_resource("storage-no-public-blob-access", open_blobs)
    assert (
        urn == "urn:ws-storage"
        and "anonymous public read access" in message
        and "allowBlobPublicAccess" in message
    )
    assert _validate_resource("storage-no-public-blob-access", rec.storage()) == []


def test_resource_policy_ignores_other_types() -> None:
    assert _validate_resource("storage-https-only", deep(cluster(), enableHttpsTrafficOnly=False)) == []


def test_stack_policy_sees_all_resources() -> None:
    warm = deep(cluster(), **{A + "vmPriority": "LowPriority", A + "scaleSettings.minNodeCount": 3})
    resources = [
        PolicyResource(r.type, r.inputs, f"urn:{r.name}", r.name, _options(), None, None, [], {})
        for r in [rec.workspace(), warm]
    ]
    reported: list[tuple[str, str | None]] = []
    p = crossguard_policy(policy("evictable-scales-from-zero"), lambda: rec.ctx("dev"))
    p.validate(StackValidationArgs(resources), lambda message, urn=None: reported.append((message, urn)))
    [(message, urn)] = reported
    assert urn == "urn:gpu" and "keeps 3 node(s)" in message


def test_enforcement_follows_severity_and_overrides() -> None:
    ctx = rec.ctx("dev", severities={"storage-tls12": Severity.ADVISORY})
    levels = enforcement(ALL_POLICIES, ctx)
    assert levels["storage-tls12"] is EnforcementLevel.ADVISORY
    assert levels["storage-https-only"] is EnforcementLevel.MANDATORY
    assert levels["compute-idle-scale-down"] is EnforcementLevel.ADVISORY


def test_stack_context_from_the_stacks_config(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {
        "trainstack:environment": "prod",
        "trainstack:budget": "500",
        "trainstack:policies": json.dumps({"storage-tls12": "advisory"}),
        "trainstack:tags": json.dumps({"owner": "me"}),
        "trainstack:workspace": json.dumps({"name": "mlw-x", "resourceGroup": "rg-x"}),
    }
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(config))
    ctx = stack_context()
    assert ctx.is_prod and ctx.budget_usd == 500 and ctx.severities == {"storage-tls12": Severity.ADVISORY}
    assert "owner" in ctx.required_tags and "environment" in ctx.required_tags
    assert ctx.sku("Standard_NC6s_v3") is not None


def test_policy_pack_file_points_at_the_project_venv() -> None:
    spec = yaml.safe_load((ROOT / "policies" / "PulumiPolicy.yaml").read_text())
    assert spec["runtime"]["name"] == "python"
    assert (ROOT / "policies" / spec["runtime"]["options"]["virtualenv"]).resolve() == (
        ROOT / ".venv"
    ).resolve()


def test_pack_process_starts_its_analyzer_server() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PULUMI_CONFIG"}
    with subprocess.Popen(
        [sys.executable, "__main__.py"],
        cwd=ROOT / "policies",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            port = proc.stdout.readline().decode().strip()
            assert port.isdigit() and int(port) > 0, proc.stderr.read().decode()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
