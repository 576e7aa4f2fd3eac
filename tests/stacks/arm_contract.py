"""Checks recorded resource inputs against Azure's own API models: the TypeSpec-style models
(`rest_field`, `__mapping__` discriminators) that azure-ai-ml vendors and the newer
azure-mgmt-* packages ship, and the msrest models (`_attribute_map`) of the older ones.

`check(inputs, model)` returns one line per problem: a property the API does not know, a
required property that is missing, a read-only property that is set, an enum value the API
does not list. azure-native flattens `properties` into the resource for some types (storage
accounts, workspaces): a key the envelope lacks but `properties` knows is checked there.
"""

from __future__ import annotations

import enum
import re
import sys
from typing import Any

_MODEL_REF = re.compile(r"_models\.(\w+)")


def _is_rest_field(value: Any) -> bool:
    # Every package vendors its own copy of `_RestField`.
    return type(value).__name__ == "_RestField"


def _norm(name: str) -> str:
    # The wire spells some names differently from azure-native (`Application_Type`).
    return name.replace("_", "").lower()


class _Field:
    def __init__(self, rest_name: str, annotation: str, required: bool, read_only: bool, module: Any) -> None:
        self.rest_name = rest_name
        self.annotation = annotation
        self.required = required
        self.read_only = read_only
        self.module = module

    def referenced(self) -> list[Any]:
        names = _MODEL_REF.findall(self.annotation) or re.findall(r"\b([A-Z]\w+)\b", self.annotation)
        return [getattr(self.module, n) for n in names if hasattr(self.module, n)]


def _fields(model: type) -> dict[str, _Field]:
    # The `models` package exports both the models (`_models`) and the enums (`_enums`).
    module = sys.modules[model.__module__.rsplit(".", 1)[0]]
    if hasattr(model, "_attribute_map"):  # msrest
        validation = getattr(model, "_validation", {})
        out = {}
        for attr, spec in model._attribute_map.items():
            key = spec["key"].replace("\\.", ".").split(".")[-1]
            rules = validation.get(attr, {})
            typ = spec["type"].strip("[]{}")
            field = _Field(key, typ, bool(rules.get("required")), bool(rules.get("readonly")), module)
            out[_norm(key)] = field
            # As below: azure-native names a flattened property after the SDK attribute where the
            # wire name would clash (a role definition's `properties.type` is its `roleType`).
            out.setdefault(_norm(attr), field)
        return out
    out = {}
    for klass in reversed(model.__mro__):
        annotations = klass.__dict__.get("__annotations__", {})
        for attr, value in klass.__dict__.items():
            if _is_rest_field(value):
                annotation = str(annotations.get(attr, "")).replace("typing.", "")
                read_only = value._visibility == ["read"]
                optional = annotation.startswith("Optional") or "NoneType" in annotation
                required = not optional and not read_only
                rest_name = value._rest_name_input or attr  # unset where it equals the attribute
                field = _Field(rest_name, annotation, required, read_only, module)
                out[_norm(rest_name)] = field
                # azure-native names a few properties after the SDK attribute, not the wire
                # (`enableHttpsTrafficOnly` for `supportsHttpsTrafficOnly`).
                out.setdefault(_norm(attr), field)
    return out


def _discriminated(model: type, value: dict[str, Any]) -> type:
    mapping = getattr(model, "__mapping__", None) or getattr(model, "_subtype_map", None)
    if not mapping:
        return model
    if isinstance(mapping, dict) and all(isinstance(v, dict) for v in mapping.values()):  # msrest
        for key, subtypes in mapping.items():
            found = subtypes.get(value.get(key))
            if found:
                return getattr(sys.modules[model.__module__], found)  # type: ignore[no-any-return]
        return model
    for klass_field in model.__dict__.values():
        if _is_rest_field(klass_field) and klass_field._is_discriminator:
            tag = value.get(klass_field._rest_name_input or "")
            if tag in mapping and mapping[tag] is not model:
                return _discriminated(mapping[tag], value)
    return model


def check(value: Any, model: type, path: str = "") -> list[str]:
    """Every way `value` (a recorded input, camelCase) disagrees with `model`."""
    if not isinstance(value, dict):
        return []
    model = _discriminated(model, value)
    fields = _fields(model)
    inner = fields.get("properties")
    inner_model = next(iter(inner.referenced()), None) if inner else None
    flattened = {k: v for k, v in value.items() if _norm(k) not in fields}
    has_flattened = bool(flattened)
    problems: list[str] = []
    if flattened and inner_model is not None and "properties" not in value:
        inner_fields = _fields(_discriminated(inner_model, flattened))
        known_inner = {k: v for k, v in flattened.items() if _norm(k) in inner_fields}
        problems += check(known_inner, inner_model, f"{path}properties(flattened).")
        flattened = {k: v for k, v in flattened.items() if k not in known_inner}
    for key in flattened:
        problems.append(f"{path}{key}: not a property of {model.__name__}")
    names_of: dict[int, set[str]] = {}
    for key, field in fields.items():
        names_of.setdefault(id(field), set()).add(key)
    for key, field in fields.items():
        if key != _norm(field.rest_name):
            continue  # an alias: the field is checked under its wire name
        present = any(_norm(k) in names_of[id(field)] for k in value) or (
            key == "properties" and has_flattened
        )
        if field.required and not present:
            problems.append(f"{path}{field.rest_name}: required by {model.__name__} but missing")
    for key, item in value.items():
        field = fields.get(_norm(key))
        if field is None:
            continue
        if field.read_only:
            problems.append(f"{path}{key}: read-only in {model.__name__}")
        problems += _check_nested(item, field, f"{path}{key}")
    return problems


def _check_nested(item: Any, field: _Field, path: str) -> list[str]:
    problems: list[str] = []
    for ref in field.referenced():
        if isinstance(ref, type) and issubclass(ref, enum.Enum):
            if isinstance(item, str) and item.lower() not in {str(m.value).lower() for m in ref}:
                problems.append(f"{path}: {item!r} is not one of {sorted(str(m.value) for m in ref)}")
        elif isinstance(ref, type):
            items = (
                item.values() if isinstance(item, dict) and "dict[" in field.annotation.lower() else [item]
            )
            if isinstance(item, list):
                items = item
            for sub in items:
                problems += check(sub, ref, path + ".")
    return problems
