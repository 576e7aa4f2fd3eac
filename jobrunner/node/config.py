"""The agent's config file: what a pool node's agent serves and how (`/etc/jobrunner/agent.yaml`).

A GPU pool writes it through the scale set's custom data, a cloud-init document::

    #cloud-config
    write_files:
      - path: /etc/jobrunner/agent.yaml
        permissions: "0640"
        content: |
          store: https://<account>.blob.core.windows.net
          pool: a100-spot
          ...

`load_agent_config` reads either form (the YAML/JSON file itself, or the cloud-init document,
as text or base64 as it sits in the scale set's `customData`), so what the pool writes is what
the agent reads and what `jobrunner agent --check-config` checks. `render_cloud_init` writes
the document the pool puts in custom data. `schemas/agent.schema.json` is generated from
`AgentConfig` (`agent_json_schema`).

Keys are camelCase in files, unknown keys are refused with a "did you mean". Every problem
is a `ConfigError` naming the file, the field path and the fix.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from jobrunner.errors import ConfigError, Problem
from jobrunner.files import file_json_schema, parse_mapping, validate_model
from jobrunner.node.agent_logging import DEFAULT_LEVEL, LogLevel
from jobrunner.spec.environments import check_map

AGENT_CONFIG_PATH = "/etc/jobrunner/agent.yaml"
SCHEDULED_EVENTS_URL = "http://169.254.169.254/metadata/scheduledevents"
CLOUD_CONFIG_HEADER = "#cloud-config"
SCHEMA_ID = "https://trainstack.dev/schemas/agent.schema.json"
# Queue names are 3-63 lowercase letters, digits and single dashes; the pool's queue is `pool-<name>`.
_POOL_NAME = re.compile(r"(?!.*--)[a-z0-9][a-z0-9-]{0,56}[a-z0-9]")
# Blob container names: 3-63 lowercase letters, digits and single dashes.
CONTAINER_NAME = re.compile(r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")


def _matching(pattern: re.Pattern[str], value: str, what: str, rule: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"invalid {what} {value!r}: {rule}")
    return value


class _FileModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


class DatastoreLocation(_FileModel):
    """Where a datastore's files live: a blob container of a storage account."""

    container: str = Field(description="blob container name")
    account: str | None = Field(None, description="storage account name (default: the job store's)")

    @field_validator("container")
    @classmethod
    def _container(cls, value: str) -> str:
        rule = "3-63 lowercase letters, digits or single `-`"
        if value in ("runs", "pools"):
            raise ValueError(f"container {value!r} is the runner's own (every run's files): not a datastore")
        return _matching(CONTAINER_NAME, value, "container name", rule)

    @field_validator("account")
    @classmethod
    def _account(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _matching(_ACCOUNT, value, "storage account name", "3-24 lowercase letters and digits")


class AgentConfig(_FileModel):
    """One node's agent: the store and pool it serves, its node setup and its timings."""

    store: str = Field(
        description="the job store: a blob account URL `https://<account>.blob.core.windows.net` "
        "(signed in with the node's managed identity) or a connection string (Azurite)"
    )
    identity_client_id: str | None = Field(
        None, description="client id of the user-assigned identity to sign in with (AZURE_CLIENT_ID)"
    )
    pool: str = Field(description="the pool whose queue this agent serves")
    max_nodes: int | None = Field(
        None, ge=1, description="the pool's largest size; published so that submit refuses larger jobs"
    )
    name: str | None = Field(None, description="agent name (default: the host name)")
    address: str | None = Field(
        None, description="address the other gang members reach (default: this host's primary address)"
    )
    gpus: int | None = Field(None, ge=0, description="GPUs per node, overriding what nvidia-smi reports")
    work_dir: str = Field("/mnt/jobrunner/work", description="where runs are staged (the VM's local disk)")
    run_dir: str = Field(
        "/run/jobrunner",
        description="per-boot state (node setup marker and log); cleared at boot, so setup reruns then",
    )
    node_setup: str | None = Field(
        None, description="shell command run once per node at boot, before the agent takes work"
    )
    node_setup_timeout_s: int = Field(3600, ge=1, description="seconds node setup may take")
    job_user: str | None = Field(
        None,
        description="unprivileged user that job processes run as (the agent runs as root); the baked "
        "image creates `trainstack-job`, whom its firewall refuses the metadata service",
    )
    datastores: dict[str, DatastoreLocation] = Field(
        {}, description="datastore name (as in azureml://datastores/<name>/...) -> its container"
    )
    environments: dict[str, str] = Field(
        {},
        description="registered environment `<name>` or `<name>:<version>` (as a job file names it after "
        "`azureml:`) -> the container image it runs in; Azure ML's curated `AzureML-<name>` need no entry",
    )
    scheduled_events_url: str | None = Field(
        SCHEDULED_EVENTS_URL,
        description="Azure Scheduled Events endpoint watched for eviction notices (null: none watched)",
    )
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking server every job logs to (MLFLOW_TRACKING_URI): the workspace's "
        "`azureml://<region>.api.azureml.ms/mlflow/v1.0/subscriptions/...` or an http(s) server; "
        "null: jobs keep their metrics with their outputs (docs/metrics.md)",
    )
    log_level: LogLevel = Field(
        DEFAULT_LEVEL,
        description="the agent's own log lines kept in the journal: debug, info, warning or error "
        "(`jobrunner agent --log-level` overrides it)",
    )
    heartbeat_s: float | None = Field(
        None,
        gt=0,
        description="seconds from an idle agent's report to its first look for new work, then at doubling "
        "gaps (default 32)",
    )
    stale_after_s: float | None = Field(
        None, gt=0, description="silence after which the scheduler counts a node lost (default 3600)"
    )

    @field_validator("environments")
    @classmethod
    def _environments(cls, value: dict[str, str]) -> dict[str, str]:
        return check_map(value)

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        is_url = re.fullmatch(r"https://[a-z0-9]{3,24}\.blob\.core\.windows\.net/?", value) is not None
        is_connection_string = "=" in value and ";" in value
        if not (is_url or is_connection_string):
            raise ValueError(
                "not a job store: expected `https://<account>.blob.core.windows.net` or a connection string"
            )
        return value.rstrip("/")

    @field_validator("tracking_uri")
    @classmethod
    def _tracking(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"(azureml|https?)://[^/\s]+", value):
            raise ValueError(
                f"{value!r} is not a tracking server: expected `azureml://<region>.api.azureml.ms/mlflow/"
                "v1.0/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/"
                "workspaces/<name>` or `http(s)://host:port`"
            )
        return value

    @field_validator("pool")
    @classmethod
    def _pool(cls, value: str) -> str:
        rule = "2-58 lowercase letters, digits or single `-` (its queue is `pool-<name>`)"
        return _matching(_POOL_NAME, value, "pool name", rule)

    @field_validator("work_dir", "run_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not PurePosixPath(value).is_absolute():
            raise ValueError(f"{value!r} is not an absolute path")
        return value

    @field_validator("job_user")
    @classmethod
    def _job_user(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value == "root":
            raise ValueError("jobUser: root is what it must not be; name an unprivileged user")
        return _matching(re.compile(r"[a-z_][a-z0-9_-]{0,31}"), value, "user name", "a Linux user name")

    @field_validator("node_setup")
    @classmethod
    def _setup(cls, value: str | None) -> str | None:
        return value if value is None or value.strip() else None

    @model_validator(mode="after")
    def _consistent(self) -> AgentConfig:
        from jobrunner.scheduler.protocol import ProtocolSettings

        defaults = ProtocolSettings()
        stale = self.stale_after_s if self.stale_after_s is not None else defaults.stale_after_s
        beat = self.heartbeat_s if self.heartbeat_s is not None else defaults.beat_idle_s
        if stale <= beat:
            raise ValueError(
                f"staleAfterS ({stale:g}) must be larger than heartbeatS "
                f"({beat:g}): agents would look dead between two heartbeats"
            )
        return self

    @property
    def store_account(self) -> str | None:
        """The job store's account name when `store` is an account URL."""
        match = re.fullmatch(r"https://([a-z0-9]+)\.blob\.core\.windows\.net", self.store)
        return match.group(1) if match else None


# --------------------------------------------------------------------------- reading
def load_agent_config(path: str | Path) -> AgentConfig:
    """Read an agent config: YAML/JSON, or a cloud-init document (plain or base64) holding it.

    Raises ConfigError naming the file (and the field) when the file is missing, unreadable,
    not YAML, a cloud-init document without the agent's file, or a config that breaks the model.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError([Problem(str(p), "", "agent config not found", "check the path")]) from None
    except OSError as exc:
        raise ConfigError([Problem(str(p), "", f"cannot read agent config: {exc}")]) from None
    return parse_agent_config(raw, source=str(p))


def parse_agent_config(raw: bytes | str, *, source: str | None) -> AgentConfig:
    """Like `load_agent_config`, for content already in hand (`source` names it in errors)."""
    text = _text(raw if isinstance(raw, bytes) else raw.encode(), source)
    decoded = _maybe_base64(text)
    if decoded is not None:
        text = decoded
    if text.lstrip().startswith(CLOUD_CONFIG_HEADER):
        text = _from_cloud_init(text, source)
        source = f"{source or 'cloud-init'} ({AGENT_CONFIG_PATH} in write_files)"
    data = parse_mapping(text, source=source, what="agent config")
    return validate_model(AgentConfig, data, file=source)


def _text(raw: bytes, source: str | None) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([Problem(source, "", "agent config is not UTF-8 text")]) from None


def _maybe_base64(text: str) -> str | None:
    """The decoded text when `text` is one base64 blob of UTF-8 (custom data as ARM holds it)."""
    compact = "".join(text.split())
    if not compact or not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", compact) or len(compact) % 4:
        return None
    try:
        return base64.b64decode(compact, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _from_cloud_init(text: str, source: str | None) -> str:
    """The agent config file's content inside a cloud-init document's `write_files`."""
    document = parse_mapping(text, source=source, what="cloud-init document")
    files = document.get("write_files") or []
    if not isinstance(files, list):
        raise ConfigError([Problem(source, "write_files", "must be a list of files")])
    for i, entry in enumerate(files):
        if isinstance(entry, dict) and entry.get("path") == AGENT_CONFIG_PATH:
            return _file_content(entry, source, f"write_files[{i}]")
    raise ConfigError(
        [
            Problem(
                source,
                "write_files",
                f"this cloud-init document writes no {AGENT_CONFIG_PATH}",
                "add a write_files entry with that path and the agent config as its content",
            )
        ]
    )


def _file_content(entry: dict[str, Any], source: str | None, where: str) -> str:
    content = entry.get("content", "")
    encoding = str(entry.get("encoding", "text")).lower()
    if not isinstance(content, str):
        raise ConfigError([Problem(source, f"{where}.content", "must be text")])
    try:
        if encoding in ("b64", "base64"):
            return base64.b64decode(content).decode("utf-8")
        if encoding in ("gz+b64", "gzip+base64", "gz+base64", "gzip+b64"):
            return gzip.decompress(base64.b64decode(content)).decode("utf-8")
    except (binascii.Error, OSError, UnicodeDecodeError) as exc:
        problem = Problem(source, f"{where}.content", f"cannot decode ({encoding}): {exc}")
        raise ConfigError([problem]) from None
    if encoding not in ("text", "text/plain"):
        raise ConfigError(
            [Problem(source, f"{where}.encoding", f"unknown encoding {encoding!r}", "use b64 or text")]
        )
    return content


# --------------------------------------------------------------------------- writing
def config_document(config: AgentConfig) -> dict[str, Any]:
    """The config as its file holds it: camelCase keys, defaults left out."""
    return config.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def render_agent_config(config: AgentConfig) -> str:
    """The agent config file's YAML text (keys in model order)."""
    return yaml.dump(config_document(config), Dumper=_BlockDumper, sort_keys=False, default_flow_style=False)


def render_cloud_init(config: AgentConfig) -> str:
    """The cloud-init document that writes the agent config; the image's unit starts the agent.

    The file is root-only readable: it may hold a connection string.
    """
    document = {
        "write_files": [
            {
                "path": AGENT_CONFIG_PATH,
                "owner": "root:root",
                "permissions": "0640",
                "content": render_agent_config(config),
            }
        ],
    }
    return CLOUD_CONFIG_HEADER + "\n" + yaml.dump(document, Dumper=_BlockDumper, sort_keys=False, width=1000)


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as `|` blocks, so the embedded file reads as itself."""


def _block_strings(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _block_strings)


def custom_data(config: AgentConfig) -> str:
    """`render_cloud_init` base64-encoded, as a scale set's `osProfile.customData` takes it."""
    return base64.b64encode(render_cloud_init(config).encode()).decode()


def agent_json_schema() -> dict[str, Any]:
    """The JSON Schema of an agent config file (what `schemas/agent.schema.json` holds)."""
    return file_json_schema(
        AgentConfig, schema_id=SCHEMA_ID, title="jobrunner agent config (/etc/jobrunner/agent.yaml)"
    )


def summary(config: AgentConfig) -> dict[str, str]:
    """What `jobrunner agent --check-config` shows: the settings a person checks first."""
    datastores = ", ".join(f"{name} -> {d.container}" for name, d in sorted(config.datastores.items()))
    store = config.store if config.store_account else "connection string (" + _endpoint(config.store) + ")"
    return {
        "pool": f"{config.pool} (queue pool-{config.pool})",
        "store": store,
        "identity": config.identity_client_id or "default",
        "max nodes": str(config.max_nodes) if config.max_nodes is not None else "not published",
        "agent name": config.name or "host name",
        "address": config.address or "primary address",
        "gpus": str(config.gpus) if config.gpus is not None else "from nvidia-smi",
        "work dir": config.work_dir,
        "node setup": config.node_setup or "none",
        "job user": config.job_user or "the agent's own",
        "datastores": datastores or "none (container named after the datastore, `_` as `-`)",
        "environments": ", ".join(f"{k} -> {v}" for k, v in sorted(config.environments.items()))
        or "none (curated AzureML-<name> only)",
        "scheduled events": config.scheduled_events_url or "not watched",
        "log level": config.log_level,
    }


def _endpoint(connection_string: str) -> str:
    # Only the endpoint: the account key stays out of terminals and logs.
    parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    return parts.get("BlobEndpoint") or parts.get("AccountName") or "no endpoint"
