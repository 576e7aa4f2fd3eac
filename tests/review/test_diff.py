"""Two stacks' resources compared: only in A, only in B, changed with paths and both values."""

from __future__ import annotations

from policies import Resource
from tests.review import records as rec
from tests.review.records import cluster, deep
from trainstack.diff import diff_stacks, flatten, property_changes

A = "properties.properties."


def test_flatten_paths() -> None:
    assert flatten({"a": {"b": [1, {"c": 2}]}, "d": {}, "e": []}) == {
        "a.b[0]": 1,
        "a.b[1].c": 2,
        "d": {},
        "e": [],
    }


def test_property_changes_both_values_and_not_set() -> None:
    changes = property_changes({"x": 1, "y": {"z": "a"}}, {"x": 2, "w": True, "y": {"z": "a"}})
    assert [(c.path, c.a, c.b) for c in changes] == [("w", "(not set)", True), ("x", 1, 2)]


def test_only_in_a_only_in_b_and_changed() -> None:
    a = [rec.workspace(), cluster("gpu"), cluster("cpu")]
    b = [
        deep(rec.workspace(), publicNetworkAccess="Enabled"),
        deep(cluster("gpu"), **{A + "scaleSettings.maxNodeCount": 8}),
        rec.storage(),
    ]
    d = diff_stacks(a, b, name_a="dev", name_b="prod")
    assert [r.name for r in d.only_a] == ["cpu"]
    assert [r.name for r in d.only_b] == ["ws-storage"]
    changed = {c.name: [(p.path, p.a, p.b) for p in c.changes] for c in d.changed}
    assert changed == {
        "gpu": [(A + "scaleSettings.maxNodeCount", 4, 8)],
        "ws": [("publicNetworkAccess", "Disabled", "Enabled")],
    }
    assert d.as_json()["changed"][0]["changes"][0] == {
        "path": A + "scaleSettings.maxNodeCount",
        "a": 4,
        "b": 8,
    }


def test_names_differing_by_environment_are_paired() -> None:
    a = [Resource(rec.workspace().type, "mlw-dev", None, {"friendlyName": "dev"})]
    b = [Resource(rec.workspace().type, "mlw-prod", None, {"friendlyName": "prod"})]
    d = diff_stacks(a, b, env_a="dev", env_b="prod")
    assert not d.only_a and not d.only_b
    [change] = d.changed
    assert change.name == "mlw-dev → mlw-prod"
    # `devices` is not the environment `dev`: only whole words are made generic
    d2 = diff_stacks(
        [Resource("t", "devices", None)], [Resource("t", "prodices", None)], env_a="dev", env_b="prod"
    )
    assert len(d2.only_a) == len(d2.only_b) == 1


def test_same_stack_has_no_difference() -> None:
    assert diff_stacks(rec.compliant_stack(), rec.compliant_stack()).empty


def test_differently_named_clusters_are_paired_by_similar_names() -> None:
    a = [cluster("a100-spot-compute"), rec.datastore()]
    b = [
        cluster("a100-lowpri-compute", vm_size="Standard_ND96isr_H100_v5"),
        cluster("h100-dedicated-compute"),
    ]
    d = diff_stacks(a, b)
    [change] = d.changed
    assert change.name == "a100-spot-compute → a100-lowpri-compute"
    assert (A + "vmSize", "Standard_NC24ads_A100_v4", "Standard_ND96isr_H100_v5") in [
        (c.path, c.a, c.b) for c in change.changes
    ]
    assert [r.name for r in d.only_a] == ["data"] and [r.name for r in d.only_b] == ["h100-dedicated-compute"]
