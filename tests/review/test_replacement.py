"""Replace versus update, destructive changes, the cost delta's wording and a comment that
fits GitHub's limit, on hand-made records (no program run)."""

from __future__ import annotations

import re

from policies import Resource
from policies import tokens as t
from tests.review import records as rec
from tests.review.records import cluster, deep
from trainstack.change_review import ChangeReview, cost_changes, render_change
from trainstack.cost import estimate
from trainstack.diff import diff_stacks
from trainstack.replacement import AZURE, COMPONENT, ReplaceOptions, replace_reasons, stateful_reason
from trainstack.review import build_review
from trainstack.review_text import GITHUB_COMMENT_LIMIT, Section, fit_comment

A = "properties.properties."
VM_SIZE = A + "vmSize"


def test_component_patterns_cover_the_path_and_what_is_under_it() -> None:
    patterns = [VM_SIZE, A + "subnet", "identity.userAssignedIdentities[*]", "tags.*"]
    paths = [VM_SIZE, A + "subnet.id", A + "scaleSettings.maxNodeCount", "identity.userAssignedIdentities[2]"]
    reasons = replace_reasons(t.ML_COMPUTE, [*paths, "tags.owner", "tagsx"], patterns)
    assert [(r.path, r.source, r.rule) for r in reasons] == [
        (VM_SIZE, COMPONENT, VM_SIZE),
        (A + "subnet.id", COMPONENT, A + "subnet"),
        ("identity.userAssignedIdentities[2]", COMPONENT, "identity.userAssignedIdentities[*]"),
        ("tags.owner", COMPONENT, "tags.*"),
    ]
    # a prefix of a name is not its parent
    assert replace_reasons(t.ML_COMPUTE, [A + "vmSizeFamily"], [VM_SIZE]) == ()
    assert [r.path for r in replace_reasons(t.ML_COMPUTE, ["anything.at.all"], ["*"])] == ["anything.at.all"]


def test_azure_replaces_on_the_resource_id_and_the_location() -> None:
    paths = ["accountName", "resourceGroupName", "location", "minimumTlsVersion", "tags.owner"]
    reasons = {r.path: r.source for r in replace_reasons(t.STORAGE_ACCOUNT, paths)}
    assert reasons == {"accountName": AZURE, "resourceGroupName": AZURE, "location": AZURE}
    # The compute's own name is in its URL; the workspace's too, as its parent.
    compute = {r.path for r in replace_reasons(t.ML_COMPUTE, ["computeName", "workspaceName", "tags.a"])}
    assert compute == {"computeName", "workspaceName"}


def _change(base: list[Resource], head: list[Resource], options: dict | None = None) -> ChangeReview:
    ctx = rec.ctx()
    diff = diff_stacks(base, head, name_a="prod@main", name_b="prod", same_stack=True, options=options or {})
    return ChangeReview(
        stack="prod",
        ref="main",
        commit="0123456789abcdef",
        head=build_review("prod", head, ctx),
        base_resources=tuple(base),
        base_cost=estimate(base, ctx.catalog),
        base_findings=tuple(build_review("prod", base, ctx).findings),
        diff=diff,
    )


def test_same_stack_pairs_by_name_only_and_a_rename_is_delete_and_create() -> None:
    d = diff_stacks([cluster("gpu-a")], [cluster("gpu-b")], same_stack=True)
    assert [r.name for r in d.only_a] == ["gpu-a"] and [r.name for r in d.only_b] == ["gpu-b"]
    assert not d.changed
    # between two stacks, the similar names pair
    assert diff_stacks([cluster("gpu-a")], [cluster("gpu-b")]).changed


def test_deleted_and_replaced_stateful_resources_come_first() -> None:
    base = rec.compliant_stack()
    head = [r for r in base if r.type != t.KEY_VAULT]
    head = [deep(r, location="northeurope") if r.type == t.STORAGE_ACCOUNT else r for r in head]
    review = _change(base, head)
    assert [(x.action, x.name) for x in review.destructive] == [
        ("delete", "ws-vault"),
        ("replace", "ws-storage"),
    ]
    text = render_change(review, github=True)
    caution = text.index("> [!CAUTION]")
    assert caution < text.index("- Changes:") < text.index("### Changes")
    assert (
        "> - **delete** `ws-vault` (key vault" in text
        and "> - **replace** `ws-storage` (storage account" in text
    )
    assert "`location` (create-only in Azure" in text
    assert stateful_reason(t.ML_COMPUTE) is None  # a cluster holds no data: not destructive


def test_replace_honours_the_new_declarations_options() -> None:
    base, head = [cluster("gpu")], [cluster("gpu", vm_size="Standard_ND96isr_H100_v5")]
    assert _change(base, head).diff.changed[0].action == "update"  # no replace_on_changes recorded
    options = {(t.ML_COMPUTE, "gpu"): ReplaceOptions((VM_SIZE,), delete_before_replace=True)}
    [change] = _change(base, head, options).diff.changed
    assert change.action == "replace" and change.delete_before_replace
    assert "deleted before the new one is created" in render_change(_change(base, head, options))


def test_cost_delta_reads_like_a_sentence() -> None:
    before = estimate([cluster("gpu")], rec.CATALOG)
    after = estimate(
        [
            deep(cluster("gpu"), **{A + "scaleSettings.maxNodeCount": 8}),
            cluster("h100", "Standard_ND96isr_H100_v5"),
        ],
        rec.CATALOG,
    )
    by_name = {c.resource: c for c in cost_changes(before, after)}
    assert by_name["h100"].describe("max") == "+ 4 × Standard_ND96isr_H100_v5 at max: +287,094.40 USD/month"
    assert by_name["gpu"].describe("max") == (
        "4 × Standard_NC24ads_A100_v4 → 8 × Standard_NC24ads_A100_v4 at max: +10,725.16 USD/month"
    )
    gone = {c.resource: c for c in cost_changes(after, before)}["h100"]
    assert gone.action == "deleted" and gone.describe("max").startswith("- 4 × Standard_ND96isr_H100_v5")
    assert gone.describe("max").endswith("at max: -287,094.40 USD/month")


def test_a_huge_change_still_fits_one_comment_with_its_summary() -> None:
    base = [cluster(f"c{i:04}") for i in range(1500)]
    head = [deep(r, **{A + "scaleSettings.maxNodeCount": 9, "tags.owner": "x" * 300}) for r in base]
    head += [cluster(f"n{i:04}") for i in range(1500)]
    options = {(t.ML_COMPUTE, r.name): ReplaceOptions((VM_SIZE,)) for r in head}
    text = render_change(_change(base, head, options), github=True)
    assert len(text) <= GITHUB_COMMENT_LIMIT
    assert "- Changes: 1500 to create, 0 to replace, 1500 to update in place" in text
    assert re.search(r"_Cut to fit one comment \(65,536 characters\): \d+ line\(s\) left out", text)
    assert text.count("<details>") == text.count("</details>")
    assert "2850 more (`--format json` lists them all)" in text  # the open table shows 150 of 3000


def test_fit_comment_cuts_the_first_section_that_does_not_fit_by_rows() -> None:
    table = ["| a |", "|---|", *[f"| {i:03} |" for i in range(100)]]
    sections = [Section("one", ["short"]), Section("two", table, collapsed=True), Section("three", ["x"])]
    whole = fit_comment(["# title"], sections, collapsible=True, limit=None)
    assert fit_comment(["# title"], sections, collapsible=True, limit=len(whole)) == whole
    cut = fit_comment(["# title"], sections, collapsible=True, limit=len(whole) - 100)
    assert len(cut) <= len(whole) - 100
    assert "| a |\n|---|\n| 000 |" in cut and "| 099 |" not in cut and "three" not in cut
    assert cut.count("<details>") == cut.count("</details>") == 1
