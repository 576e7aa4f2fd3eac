"""The stack's configuration (the `trainstack:` keys of `stacks/Pulumi.<stack>.yaml`) as frozen
pydantic models: the one description that `__main__.py`, `trainstack validate` and
`schemas/stack.schema.json` share.

Field names are snake_case in Python and camelCase in files. Each model checks what it can
see on its own (a name Azure would refuse, `minNodes > maxNodes`, an unknown GPU size);
`StackConfig` checks what spans models (a run naming a cluster that is not declared).

Secrets: in a stack file a secret field holds Pulumi's `{secure: <ciphertext>}`; a plain
string there is refused when validating a file (`SECRETS_FROM_FILE` context). Inside the
program the Pulumi CLI (or the offline plan, with a placeholder) has already replaced it by
text, which components pass on wrapped in `pulumi.Output.secret`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from components import skus

# Validation context key: set when checking a stack file as written (secrets still encrypted).
SECRETS_FROM_FILE = "secrets_from_file"
# What a secret reads as when it was not decrypted (offline plan, file validation).
SECRET_PLACEHOLDER = "[secret]"
# Datastores every Azure ML workspace has without declaring them.
BUILTIN_DATASTORES = frozenset(
    {"workspaceblobstore", "workspacefilestore", "workspaceartifactstore", "workspaceworkingdirectory"}
)


class ConfigModel(BaseModel):
    """Frozen, camelCase in files, unknown keys refused (so typos are caught)."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


def _secret_value(value: Any, info: ValidationInfo) -> Any:
    from_file = bool(info.context and info.context.get(SECRETS_FROM_FILE))
    if isinstance(value, dict) and set(value) == {"secure"} and isinstance(value["secure"], str):
        return SECRET_PLACEHOLDER
    if isinstance(value, str) and from_file:
        raise ValueError(
            "plain-text secret: set it with `pulumi config set --secret --path <key> <value>` "
            "so the file holds `secure: <ciphertext>`"
        )
    return value


Secret = Annotated[
    str,
    BeforeValidator(_secret_value),
    WithJsonSchema(
        {
            "type": "object",
            "description": "A Pulumi secret (`pulumi config set --secret --path ...`)",
            "properties": {"secure": {"type": "string", "description": "ciphertext written by Pulumi"}},
            "required": ["secure"],
            "additionalProperties": False,
        }
    ),
]


def _check_name(value: str, pattern: str, rule: str) -> str:
    if not re.fullmatch(pattern, value):
        raise ValueError(f"invalid name {value!r}: {rule}")
    return value


class WorkspaceConfig(ConfigModel):
    """The Azure ML workspace and the resource group that holds it."""

    name: str = Field(description="Azure ML workspace name, 3-33 characters")
    resource_group: str = Field(
        description="resource group name (created unless createResourceGroup is false)"
    )
    create_resource_group: bool = True
    public_network_access: bool = Field(
        True,
        description="false: workspace, storage, key vault and registry are private, reached "
        "through private endpoints in privateEndpointSubnetId",
    )
    private_endpoint_subnet_id: str | None = Field(
        None,
        description="ARM id of the subnet the private endpoints join (needed when publicNetworkAccess "
        "is false); its VNet gets the privatelink.* DNS zones",
    )
    container_registry: bool = Field(False, description="declare a container registry for the workspace")
    allow_blob_public_access: bool = Field(
        False, description="allow anonymous blob access on the storage account"
    )

    @field_validator("name")
    @classmethod
    def _workspace_name(cls, value: str) -> str:
        return _check_name(
            value,
            r"[A-Za-z0-9][A-Za-z0-9_-]{2,32}",
            "3-33 letters, digits, `-` or `_`, starting with a letter or digit",
        )

    @field_validator("resource_group")
    @classmethod
    def _group_name(cls, value: str) -> str:
        return _check_name(
            value, r"[\w().-]{0,89}[\w()-]", "1-90 letters, digits, `_ ( ) - .`, not ending in `.`"
        )

    @field_validator("private_endpoint_subnet_id")
    @classmethod
    def _endpoint_subnet(cls, value: str | None) -> str | None:
        return ClusterConfig._subnet_id(value)

    @model_validator(mode="after")
    def _private_needs_subnet(self) -> WorkspaceConfig:
        if not self.public_network_access and self.private_endpoint_subnet_id is None:
            raise ValueError(
                "publicNetworkAccess: false needs privateEndpointSubnetId (the subnet whose private "
                "endpoints the clusters and pools reach the workspace, storage and key vault through)"
            )
        return self


class SshConfig(ConfigModel):
    admin_user: str = Field(description="the nodes' admin user")
    public_key: Secret = Field(description="the admin user's SSH public key, as a Pulumi secret")

    @field_validator("admin_user")
    @classmethod
    def _user_name(cls, value: str) -> str:
        return _check_name(
            value, r"[a-z_][a-z0-9_-]{0,31}", "a Linux user name: lowercase, up to 32 characters"
        )


class ClusterConfig(ConfigModel):
    """An AmlCompute GPU cluster."""

    name: str = Field(description="compute name, 2-16 characters")
    vm_size: str = Field(description="a GPU size from the catalog, e.g. Standard_NC24ads_A100_v4")
    priority: Literal["Dedicated", "LowPriority"] = "Dedicated"
    min_nodes: int = Field(0, ge=0)
    max_nodes: int = Field(ge=1)
    idle_seconds_before_scale_down: int = Field(
        1800, ge=60, description="idle time before a node is released"
    )
    subnet_id: str | None = Field(None, description="ARM id of the subnet the nodes join")
    ssh: SshConfig | None = None
    remote_login: bool = Field(False, description="open the SSH port on the nodes")
    node_public_ip: bool = Field(True, description="false needs subnetId")

    @field_validator("name")
    @classmethod
    def _compute_name(cls, value: str) -> str:
        return _check_name(
            value,
            r"[A-Za-z][A-Za-z0-9-]{0,14}[A-Za-z0-9]",
            "2-16 letters, digits or `-`, starting with a letter",
        )

    @field_validator("vm_size")
    @classmethod
    def _known_gpu_size(cls, value: str) -> str:
        sku = skus.find_sku(value)
        if sku is None:
            from jobrunner.errors import did_you_mean

            guess = did_you_mean(value, [s.name for s in skus.current_skus()])
            hint = f"did you mean `{guess}`?" if guess else "see components/skus.py for the GPU sizes"
            raise ValueError(f"unknown GPU size {value!r} ({hint})")
        # A retired size is still a known size: `trainstack validate` refuses it (Azure can no
        # longer create it) and the review's policy names its successor, next to every other finding.
        return sku.name

    @field_validator("subnet_id")
    @classmethod
    def _subnet_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(
            r"(?i)/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/"
            r"virtualNetworks/[^/]+/subnets/[^/]+",
            value,
        ):
            raise ValueError(
                "not a subnet id: expected /subscriptions/<id>/resourceGroups/<rg>/providers/"
                "Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ClusterConfig:
        if self.min_nodes > self.max_nodes:
            raise ValueError(f"minNodes ({self.min_nodes}) is larger than maxNodes ({self.max_nodes})")
        if not self.node_public_ip and self.subnet_id is None:
            raise ValueError("nodePublicIp: false needs subnetId (nodes without public IPs must join a VNet)")
        if self.remote_login and self.ssh is None:
            raise ValueError("remoteLogin: true needs ssh {adminUser, publicKey}")
        return self

    @property
    def sku(self) -> skus.GpuSku:
        found = skus.find_sku(self.vm_size)
        assert found is not None  # checked by the validator
        return found


class DatastoreConfig(ConfigModel):
    """A blob container, file share or ADLS Gen2 filesystem, registered as an Azure ML datastore."""

    name: str = Field(description="datastore name: letters, digits and `_`")
    kind: Literal["blob", "fileshare", "adlsgen2"]
    container: str = Field(description="container, share or filesystem name (3-63 lowercase, digits, `-`)")
    auth: Literal["identity", "accountKey", "sas"] = "identity"
    account_key: Secret | None = Field(None, description="for auth: accountKey")
    sas_token: Secret | None = Field(None, description="for auth: sas")

    @field_validator("name")
    @classmethod
    def _datastore_name(cls, value: str) -> str:
        if value in BUILTIN_DATASTORES:
            raise ValueError(f"{value!r} is a datastore every workspace already has: pick another name")
        return _check_name(value, r"[A-Za-z0-9_]{1,255}", "letters, digits and `_`")

    @field_validator("container")
    @classmethod
    def _container_name(cls, value: str) -> str:
        if value in ("runs", "pools"):
            raise ValueError(f"container {value!r} is the job runner's own (every run's files): pick another")
        return _check_name(
            value, r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", "3-63 lowercase letters, digits or single `-`"
        )

    @model_validator(mode="after")
    def _credentials(self) -> DatastoreConfig:
        if self.auth == "accountKey" and self.account_key is None:
            raise ValueError("auth: accountKey needs accountKey (a Pulumi secret)")
        if self.auth == "sas" and self.sas_token is None:
            raise ValueError("auth: sas needs sasToken (a Pulumi secret)")
        if self.auth == "sas" and self.kind == "adlsgen2":
            raise ValueError("an adlsgen2 datastore takes identity or a service principal, not sas")
        if self.auth != "accountKey" and self.account_key is not None:
            raise ValueError("accountKey is set but auth is not accountKey")
        if self.auth != "sas" and self.sas_token is not None:
            raise ValueError("sasToken is set but auth is not sas")
        return self


class EnvironmentConfig(ConfigModel):
    image: str = Field(description="container image the runs use, e.g. mcr.microsoft.com/azureml/...")


def environment_name(experiment: str) -> str:
    """The name an experiment's environment is registered under in the workspace."""
    return f"{experiment}-env"


def environment_version(image: str) -> str:
    """The version an experiment's environment is registered with: a new image, a new version."""
    return hashlib.sha256(image.encode()).hexdigest()[:12]


class RunConfig(ConfigModel):
    """A declared run: a job file submitted as an Azure ML command job on a cluster."""

    name: str = Field(description="the run's name inside its experiment")
    job: str = Field(description="path of the job file (Azure ML CLI v2 command job), from the project root")
    cluster: str = Field(description="name of a cluster in `clusters`")

    @field_validator("name")
    @classmethod
    def _run_name(cls, value: str) -> str:
        return _check_name(value, r"[A-Za-z0-9][A-Za-z0-9_-]{0,199}", "letters, digits, `-` or `_`")


class ExperimentConfig(ConfigModel):
    name: str = Field(description="Azure ML experiment name")
    environment: EnvironmentConfig
    runs: list[RunConfig] = []

    @field_validator("name")
    @classmethod
    def _experiment_name(cls, value: str) -> str:
        return _check_name(value, r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}", "letters, digits, `-`, `_` or `.`")


class PoolImageConfig(ConfigModel):
    """The pool's OS image: baked by the stack (`AgentImage`) from a marketplace base, or an
    image version that already carries the agent (a gallery image of another stack)."""

    base_image: str = Field(
        "microsoft-dsvm:ubuntu-hpc:2204",
        description="marketplace image `publisher:offer:sku[:version]` to bake the agent onto (Gen2, GPU)",
    )
    gallery_image_id: str | None = Field(
        None, description="ARM id of an existing gallery image (version) with the agent: nothing is baked"
    )
    build_subnet_id: str | None = Field(
        None,
        description="ARM id of the subnet the image build VM joins (default with publicNetworkAccess: "
        "false: the pool's subnetId); it needs privateLinkServiceNetworkPolicies disabled",
    )

    @field_validator("build_subnet_id")
    @classmethod
    def _build_subnet(cls, value: str | None) -> str | None:
        return ClusterConfig._subnet_id(value)

    @field_validator("base_image")
    @classmethod
    def _urn(cls, value: str) -> str:
        return _check_name(value, r"[^:\s]+:[^:\s]+:[^:\s]+(:[^:\s]+)?", "publisher:offer:sku[:version]")

    @field_validator("gallery_image_id")
    @classmethod
    def _gallery_image(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _check_name(
            value,
            r"(?i)/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/galleries/[^/]+/"
            r"images/[^/]+(/versions/[^/]+)?",
            "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Compute/galleries/<g>/images/<i>",
        )

    @property
    def urn(self) -> tuple[str, str, str, str]:
        """(publisher, offer, sku, version), `latest` when the URN names none."""
        parts = self.base_image.split(":")
        return parts[0], parts[1], parts[2], parts[3] if len(parts) == 4 else "latest"


# Single placement groups hold at most 100 VMs; InfiniBand only connects VMs inside one.
MAX_NODES_SINGLE_PLACEMENT_GROUP = 100


class GpuPoolConfig(ConfigModel):
    """A self-managed GPU pool: a VM scale set whose nodes run the jobrunner agent."""

    name: str = Field(description="pool name: the scale set's name and the job queue `pool-<name>`")
    vm_size: str = Field(description="a GPU size from the catalog, e.g. Standard_NC24ads_A100_v4")
    priority: Literal["Regular", "Low", "Spot"] = "Spot"
    eviction_policy: Literal["Deallocate", "Delete"] | None = Field(
        None, description="Spot/Low only; default Delete (an evicted node keeps no disk or quota)"
    )
    max_price: float | None = Field(
        None, description="Spot only: highest USD per hour per node; -1 = up to the on-demand price"
    )
    min_nodes: int = Field(0, ge=0)
    max_nodes: int = Field(ge=1, le=1000)
    idle_minutes_before_scale_in: int = Field(
        10,
        ge=5,
        le=720,
        description="minutes with an empty queue before a node is released (autoscale: 5-720)",
    )
    subnet_id: str = Field(description="ARM id of the subnet the nodes join (they get no public IP)")
    image: PoolImageConfig = PoolImageConfig()
    node_setup: str | None = Field(
        None, description="command run once per node at boot before it takes jobs (Batch AI's setup task)"
    )
    datastores: list[str] = Field(
        [], description="names of blob datastores in `datastores` that jobs on the pool read and write"
    )
    environments: dict[str, str] = Field(
        {},
        description="registered environment `<name>` or `<name>:<version>` -> image, on top of the "
        "stack's experiment environments (`<experiment>-env`)",
    )
    ssh: SshConfig = Field(description="the nodes' admin user and SSH public key (no password login)")

    @field_validator("name")
    @classmethod
    def _pool_name(cls, value: str) -> str:
        return _check_name(
            value,
            r"(?!.*--)[a-z][a-z0-9-]{0,56}[a-z0-9]",
            "2-58 lowercase letters, digits or single `-`, starting with a letter (it names the job queue)",
        )

    @field_validator("environments")
    @classmethod
    def _pool_environments(cls, value: dict[str, str]) -> dict[str, str]:
        from jobrunner.spec.environments import check_map

        return check_map(value)  # the agent's own rule: the stack cannot write what it refuses

    @field_validator("vm_size")
    @classmethod
    def _pool_gpu_size(cls, value: str) -> str:
        return ClusterConfig._known_gpu_size(value)

    @field_validator("subnet_id")
    @classmethod
    def _pool_subnet(cls, value: str) -> str:
        checked = ClusterConfig._subnet_id(value)
        assert checked is not None
        return checked

    @model_validator(mode="after")
    def _pool_consistent(self) -> GpuPoolConfig:
        if self.min_nodes > self.max_nodes:
            raise ValueError(f"minNodes ({self.min_nodes}) is larger than maxNodes ({self.max_nodes})")
        if self.priority == "Regular" and self.eviction_policy is not None:
            raise ValueError("evictionPolicy is only for Spot or Low priority: remove it or set priority")
        if self.max_price is not None:
            if self.priority != "Spot":
                raise ValueError("maxPrice is only for Spot priority")
            if self.max_price != -1 and self.max_price <= 0:
                raise ValueError(f"maxPrice {self.max_price:g}: a positive USD price per hour, or -1")
        if self.sku.infiniband and self.max_nodes > MAX_NODES_SINGLE_PLACEMENT_GROUP:
            raise ValueError(
                f"maxNodes {self.max_nodes}: an InfiniBand pool is one placement group of at most "
                f"{MAX_NODES_SINGLE_PLACEMENT_GROUP} nodes"
            )
        return self

    @property
    def sku(self) -> skus.GpuSku:
        found = skus.find_sku(self.vm_size)
        assert found is not None  # checked by the validator
        return found

    @property
    def effective_eviction_policy(self) -> Literal["Deallocate", "Delete"] | None:
        if self.priority == "Regular":
            return None
        return self.eviction_policy or "Delete"


class StackConfig(ConfigModel):
    """Everything under `trainstack:` in one stack file."""

    environment: Literal["dev", "test", "prod"]
    tags: dict[str, str] = {}
    workspace: WorkspaceConfig
    clusters: list[ClusterConfig] = []
    datastores: list[DatastoreConfig] = []
    experiments: list[ExperimentConfig] = []
    pools: list[GpuPoolConfig] = Field([], description="self-managed GPU pools running the jobrunner agent")
    budget: float | None = Field(
        None, gt=0, description="monthly budget in USD that the stack may not exceed at maximum scale"
    )
    policies: dict[str, Literal["mandatory", "advisory"]] = Field(
        {}, description="severity per policy id for this stack, overriding the default (see docs/policies.md)"
    )

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> StackConfig:
        # A file check reports these itself, each at its own field path.
        if not (info.context and info.context.get(SECRETS_FROM_FILE)):
            for problem in self.reference_problems():
                raise ValueError(f"{problem.path}: {problem.message} ({problem.fix})")
        return self

    def reference_problems(self) -> list[ReferenceProblem]:
        """Names used twice, and runs naming a cluster that is not declared."""
        from jobrunner.errors import did_you_mean

        out: list[ReferenceProblem] = []
        for what, names in (
            ("clusters", [c.name.lower() for c in self.clusters]),
            ("datastores", [d.name for d in self.datastores]),
            ("experiments", [e.name for e in self.experiments]),
            ("pools", [p.name for p in self.pools]),
        ):
            for i, name in enumerate(names):
                if name in names[:i]:
                    out.append(
                        ReferenceProblem(
                            f"{what}[{i}].name", f"the name {name!r} is used twice", "rename one"
                        )
                    )
        clusters = [c.name for c in self.clusters]
        for i, experiment in enumerate(self.experiments):
            for j, run in enumerate(experiment.runs):
                if run.cluster not in clusters:
                    guess = did_you_mean(run.cluster, clusters)
                    fix = (
                        f"did you mean `{guess}`?"
                        if guess
                        else f"declare it in clusters (declared: {clusters})"
                    )
                    out.append(
                        ReferenceProblem(
                            f"experiments[{i}].runs[{j}].cluster", f"no cluster named {run.cluster!r}", fix
                        )
                    )
        out.extend(self._pool_datastore_problems())
        out.extend(self._private_pool_problems())
        return out

    def build_subnet(self, pool: GpuPoolConfig) -> str | None:
        """The subnet `pool`'s image build VM joins: the one the pool names, else, in a private
        stack, the pool's own (the build's files are reachable only inside the VNet); None when
        the image is not baked here or the build may use Image Builder's own network."""
        if pool.image.gallery_image_id is not None:
            return None
        if pool.image.build_subnet_id is not None:
            return pool.image.build_subnet_id
        return None if self.workspace.public_network_access else pool.subnet_id

    def _private_pool_problems(self) -> list[ReferenceProblem]:
        """In a private stack the `privatelink.*` zones are linked to the private endpoints'
        VNet only: a pool node or build VM elsewhere resolves the store's public name and is
        refused."""
        endpoints = self.workspace.private_endpoint_subnet_id
        if self.workspace.public_network_access or endpoints is None:
            return []
        vnet = _vnet(endpoints)
        out: list[ReferenceProblem] = []
        for i, pool in enumerate(self.pools):
            for path, subnet, who in (
                (f"pools[{i}].subnetId", pool.subnet_id, "the pool's nodes"),
                (f"pools[{i}].image.buildSubnetId", pool.image.build_subnet_id, "the image build VM"),
            ):
                if subnet is not None and _vnet(subnet).lower() != vnet.lower():
                    out.append(
                        ReferenceProblem(
                            path,
                            f"{who} would join {subnet}, outside the VNet of "
                            f"workspace.privateEndpointSubnetId ({vnet}), the only one linked to the "
                            "private DNS zones: they could not reach the private storage",
                            f"use a subnet of {vnet}",
                        )
                    )
        return out

    def _pool_datastore_problems(self) -> list[ReferenceProblem]:
        """A pool's datastores are declared blob datastores: agents reach them through the blob
        API of the job store (the workspace's storage account)."""
        from jobrunner.errors import did_you_mean

        kinds = {d.name: d.kind for d in self.datastores}
        out: list[ReferenceProblem] = []
        for i, pool in enumerate(self.pools):
            for j, name in enumerate(pool.datastores):
                path = f"pools[{i}].datastores[{j}]"
                if name not in kinds:
                    guess = did_you_mean(name, kinds)
                    fix = (
                        f"did you mean `{guess}`?"
                        if guess
                        else f"declare it in datastores (declared: {sorted(kinds)})"
                    )
                    out.append(ReferenceProblem(path, f"no datastore named {name!r}", fix))
                elif kinds[name] != "blob":
                    out.append(
                        ReferenceProblem(
                            path,
                            f"datastore {name!r} is a {kinds[name]}; pool agents read blob containers only",
                            "use a blob datastore",
                        )
                    )
        return out

    def pool_environments(self, pool: GpuPoolConfig) -> dict[str, str]:
        """The environments map `pool`'s agents get: each experiment's environment under the
        name and version the stack registers it with (`<experiment>-env`,
        `<experiment>-env:<version>`), then the pool's own entries, which win."""
        out: dict[str, str] = {}
        for experiment in self.experiments:
            name, image = environment_name(experiment.name), experiment.environment.image
            out[name] = out[f"{name}:{environment_version(image)}"] = image
        return {**out, **pool.environments}

    def datastore_names(self) -> set[str]:
        """Datastores a job may name: the declared ones and the workspace's built-in ones."""
        return {d.name for d in self.datastores} | BUILTIN_DATASTORES


def _vnet(subnet_id: str) -> str:
    return subnet_id.split("/subnets/", 1)[0]


@dataclass(frozen=True)
class ReferenceProblem:
    """A problem found across models: `path` is relative to the `trainstack:` namespace."""

    path: str
    message: str
    fix: str
