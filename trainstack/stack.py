"""Stack files (`stacks/Pulumi.<stack>.yaml`) read into `components.config.StackConfig`.

A stack file is Pulumi's: `config:` holds namespaced keys. Keys under `trainstack:` are ours
and must match `StackConfig`; `azure-native:location` is required (every resource is placed
there); keys of other namespaces belong to their providers and pass unchecked.

`load_stack` checks the file as written (schema, names, secrets kept encrypted, references
between entries, job files and the datastores they name) and raises one `ConfigError` with
every problem. `runtime_config` turns a loaded file into the flat config the Pulumi program
reads, with secrets replaced by a placeholder marked secret: nothing is ever decrypted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
from pydantic import ConfigDict, Field, create_model

from components.config import SECRETS_FROM_FILE, StackConfig
from jobrunner.errors import ConfigError, Problem, problems_from_validation

NAMESPACE = "trainstack"
LOCATION_KEY = "azure-native:location"
SCHEMA_COMMENT = "# yaml-language-server: $schema=../schemas/stack.schema.json"


def _file_config_model() -> type[pydantic.BaseModel]:
    """`StackConfig`'s fields as `trainstack:<camelCase>` keys, plus the provider location."""
    fields: dict[str, Any] = {}
    for name, info in StackConfig.model_fields.items():
        alias = f"{NAMESPACE}:{info.alias or name}"
        default = ... if info.is_required() else info.get_default(call_default_factory=True)
        fields[name] = (info.annotation, Field(default, alias=alias, description=info.description))
    fields["location"] = (str, Field(alias=LOCATION_KEY, description="Azure region of every resource"))
    return create_model(
        "StackFileConfig",
        __config__=ConfigDict(
            frozen=True,
            extra="forbid",
            json_schema_extra={
                "patternProperties": {
                    "^(?!trainstack:)[A-Za-z0-9_.-]+:": {"description": "another provider's key"}
                }
            },
        ),
        **fields,
    )


StackFileConfig = _file_config_model()


class StackFile(pydantic.BaseModel):
    """A whole `Pulumi.<stack>.yaml`."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="trainstack stack file")

    config: StackFileConfig  # type: ignore[valid-type]
    encryptionsalt: str | None = None
    secretsprovider: str | None = None
    encryptedkey: str | None = None
    environment: list[str] | None = Field(None, description="Pulumi ESC environments imported by the stack")


@dataclass(frozen=True)
class LoadedStack:
    """A stack file that passed every check."""

    name: str
    path: Path
    config: StackConfig
    location: str
    raw_config: dict[str, Any]  # the file's `config:` mapping, secrets still `{secure: ...}`


def stack_path(name: str, project_dir: str | Path = ".") -> Path:
    """Where a stack's file lives: `stacks/Pulumi.<name>.yaml` (Pulumi.yaml's stackConfigDir)."""
    return Path(project_dir) / "stacks" / f"Pulumi.{name}.yaml"


def stack_names(project_dir: str | Path = ".") -> list[str]:
    """The stacks that have a file under `stacks/`, sorted."""
    folder = Path(project_dir) / "stacks"
    return sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in folder.glob("Pulumi.*.yaml"))


def load_stack(name: str, project_dir: str | Path = ".", *, check_jobs: bool = True) -> LoadedStack:
    """Read and check `stacks/Pulumi.<name>.yaml`.

    Raises ConfigError (every problem, each with file, field path and fix) when the file is
    missing, not YAML, breaks the schema, holds a plain-text secret, names a cluster that is
    not declared or (with `check_jobs`) a job file that is missing, broken or names an
    undeclared datastore.
    """
    from jobrunner.files import read_mapping

    path = stack_path(name, project_dir)
    if not path.exists():
        known = stack_names(project_dir)
        raise ConfigError(
            [Problem(str(path), "", f"no stack named {name!r}", f"stacks here: {', '.join(known) or 'none'}")]
        )
    data = read_mapping(path, what="stack file")
    config = data.get("config")
    if isinstance(config, dict):
        # Other providers' keys are theirs to check.
        data = {**data, "config": {k: v for k, v in config.items() if _ours(k)}}
    try:
        parsed = StackFile.model_validate(data, context={SECRETS_FROM_FILE: True})
    except pydantic.ValidationError as exc:
        raise ConfigError(problems_from_validation(exc, StackFile, file=path)) from None
    file_config: Any = parsed.config  # its fields are made at run time, from StackConfig's
    stack_config = StackConfig.model_validate(
        {k: getattr(file_config, k) for k in StackConfig.model_fields}, context={SECRETS_FROM_FILE: True}
    )
    problems = [
        Problem(str(path), f"config.{NAMESPACE}:{p.path}", p.message, p.fix)
        for p in stack_config.reference_problems()
    ]
    if check_jobs:
        from trainstack.stack_jobs import job_problems

        problems += job_problems(stack_config, stack_file=path, project_dir=Path(project_dir))
    if problems:
        raise ConfigError(problems)
    return LoadedStack(name, path, stack_config, file_config.location, dict(config or {}))


def _ours(key: str) -> bool:
    return key.startswith(f"{NAMESPACE}:") or key == LOCATION_KEY or ":" not in key


def runtime_config(stack: LoadedStack) -> tuple[dict[str, str], list[str]]:
    """The config a Pulumi program sees (`PULUMI_CONFIG`): key -> text (objects as JSON), and
    the keys that hold a secret. Secrets become `[secret]`; nothing is decrypted."""
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in stack.raw_config.items():
        cleaned, had_secret = _strip_secrets(value)
        values[key] = cleaned if isinstance(cleaned, str) else json.dumps(cleaned)
        if had_secret:
            secret_keys.append(key)
    return values, secret_keys


def _strip_secrets(value: Any) -> tuple[Any, bool]:
    from components.config import SECRET_PLACEHOLDER

    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET_PLACEHOLDER, True
        pairs = {k: _strip_secrets(v) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(s for _, s in pairs.values())
    if isinstance(value, list):
        items = [_strip_secrets(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


STACK_SCHEMA_ID = "https://trainstack.dev/schemas/stack.schema.json"


def stack_json_schema() -> dict[str, Any]:
    """The JSON Schema of a stack file (what `schemas/stack.schema.json` holds)."""
    from jobrunner.files import file_json_schema

    title = "trainstack stack file (stacks/Pulumi.<stack>.yaml)"
    return file_json_schema(StackFile, schema_id=STACK_SCHEMA_ID, title=title)
