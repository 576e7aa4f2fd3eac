"""`AgentImage`: a VM image with the jobrunner agent baked in, built by Azure Image Builder.

Declares a compute gallery and a Gen2 image definition, a user-assigned identity for Image
Builder, a blob container holding the build's files (the jobrunner wheel, the install script
and the systemd unit from `packaging/`, each with its SHA-256 in the template; the container is
in the deployment's own account, `DeployArtifacts`, where no node can write), and the
`VirtualMachineImageTemplate` that bakes them onto a GPU-ready marketplace image
(`microsoft-dsvm:ubuntu-hpc:2204`: drivers, CUDA, InfiniBand) and distributes the result to
the gallery. The template builds once, when it is
created (`autoRun`).

In a private stack the account holding the build's files refuses public traffic, so the build
VM joins the stack's VNet (`vmProfile.vnetConfig`): Image Builder puts it in the given subnet,
with no public IP, and reaches it through a small proxy VM and a Private Link service in its
staging resource group. The subnet must have `privateLinkServiceNetworkPolicies` disabled and
let Azure's load balancer in on TCP 60001 (docs/security.md). The builder's identity gets a
custom role on the VNet that only reads it and joins its subnets.

Image Builder cannot update a template. Its name therefore carries a hash of everything it
builds from: the base image, the customize steps, the install script and unit (hashed here)
and the wheel (its MD5 as Azure stores it, known once the blob is uploaded), so new content
is a new template, created before the old one is deleted. Per-node settings never go into
the image (Image Builder deprovisions the VM): they arrive in the scale set's custom data.

Build the wheel before `pulumi up` (`make wheel`, into `dist/`).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pulumi
from pulumi_azure_native import authorization, compute, managedidentity, storage
from pulumi_azure_native import virtualmachineimages as vmi
from pydantic import BaseModel, ConfigDict

from components import roles
from components.config import PoolImageConfig
from components.private_network import vnet_of

PACKAGING = Path(__file__).resolve().parents[1] / "packaging"
INSTALL_SCRIPT = "install-agent.sh"
UNIT_FILE = "jobrunner-agent.service"
GUARD_FILE = "guard-metadata.sh"  # the job user's firewall rule (install-agent.sh finds it beside itself)
PACKAGED = (INSTALL_SCRIPT, UNIT_FILE, GUARD_FILE)
# Gen2-capable and cheap: the build VM only installs files, it needs no GPU.
BUILD_VM_SIZE = "Standard_D4ds_v5"
BUILD_TIMEOUT_MINUTES = 90
# The proxy VM that relays Image Builder's commands to a build VM inside a VNet: Azure's default
# size, written out so that the plan shows what runs.
PROXY_VM_SIZE = "Standard_A1_v2"
# What Image Builder needs on the VNet to put its build VM, proxy VM and load balancer there.
NETWORK_JOIN_ACTIONS = (
    "Microsoft.Network/virtualNetworks/read",
    "Microsoft.Network/virtualNetworks/subnets/join/action",
)
# The agent's own extras: its MLflow client, which opens each job run's run in the workspace.
AGENT_EXTRAS = "tracking"
# The node Python's packages for jobs that log with MLflow to the workspace, as on Azure ML:
# MLflow's Azure ML plugin (azureml:// URIs, the node identity), with its mlflow-skinny.
JOB_PACKAGES = ("azureml-mlflow==1.62.0.post6",)


class AgentImageArgs(BaseModel):
    """Plain values an `AgentImage` is built from."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    image: PoolImageConfig
    wheel: Path  # dist/jobrunner-<version>-py3-none-any.whl
    location: str
    scope: tuple[str, ...]  # resource group and workspace names: fixes the role assignments' GUIDs
    # The subnet the build VM joins (private stacks: the files are reachable only there); None:
    # Image Builder's own throwaway network with a public IP.
    build_subnet_id: str | None = None


def wheel_path(project_dir: Path) -> Path:
    """Where `make wheel` puts the agent's wheel (its version from packaging/jobrunner)."""
    import tomllib

    version = tomllib.loads((PACKAGING / "jobrunner" / "pyproject.toml").read_text())["project"]["version"]
    return project_dir / "dist" / f"jobrunner-{version}-py3-none-any.whl"


def gallery_name(name: str) -> str:
    """Gallery names allow letters, digits, `.` and `_` only (no `-`), 80 at most."""
    return ("gal_" + re.sub(r"[^A-Za-z0-9_.]", "_", name))[:80]


# What the wheel's checksum reads as in a plan made before `make wheel` (`pulumi up` cannot
# upload a missing file, so such a plan is never deployed).
WHEEL_NOT_BUILT = "wheel-not-built-run-make-wheel"


def wheel_sha256(wheel: Path) -> str:
    """The wheel's SHA-256 (Image Builder refuses a download that does not match), or
    WHEEL_NOT_BUILT when the file is not there yet."""
    if not wheel.is_file():
        return WHEEL_NOT_BUILT
    return hashlib.sha256(wheel.read_bytes()).hexdigest()


def customize_steps(
    wheel_name: str, urls: dict[str, pulumi.Input[str]], *, wheel_checksum: str = WHEEL_NOT_BUILT
) -> list[Any]:
    """Copy the wheel and the packaged files onto the build VM (Linux File steps may only write under /tmp),
    each checked against its SHA-256, then run the install script as root."""
    shas = {f: hashlib.sha256((PACKAGING / f).read_bytes()).hexdigest() for f in PACKAGED}
    return [
        vmi.ImageTemplateFileCustomizerArgs(
            type="File",
            name="jobrunner-wheel",
            source_uri=urls[wheel_name],
            destination=f"/tmp/{wheel_name}",
            sha256_checksum=wheel_checksum,
        ),
        *[
            vmi.ImageTemplateFileCustomizerArgs(
                type="File",
                name=f,
                source_uri=urls[f],
                destination=f"/tmp/{f}",
                sha256_checksum=shas[f],
            )
            for f in PACKAGED
        ],
        vmi.ImageTemplateShellCustomizerArgs(
            type="Shell",
            name="install-jobrunner-agent",
            inline=[
                f"sudo JOBRUNNER_EXTRAS={AGENT_EXTRAS} bash /tmp/{INSTALL_SCRIPT} /tmp/{wheel_name} "
                f"/tmp/{UNIT_FILE} " + " ".join(JOB_PACKAGES),
                f"sudo rm -f /tmp/{INSTALL_SCRIPT} /tmp/{UNIT_FILE} /tmp/{GUARD_FILE} /tmp/{wheel_name}",
            ],
        ),
    ]


def recipe_digest(image: PoolImageConfig, wheel_name: str, build_subnet_id: str | None = None) -> str:
    """Hash of what the image is built from, apart from the wheel's bytes (see the module doc);
    the build's subnet too, as a template cannot move to another one."""
    h = hashlib.sha256()
    recipe: dict[str, object] = {"base": image.base_image, "wheel": wheel_name, "vm": BUILD_VM_SIZE}
    recipe |= {"extras": AGENT_EXTRAS, "jobs": list(JOB_PACKAGES)}
    if build_subnet_id is not None:
        recipe |= {"subnet": build_subnet_id, "proxy": PROXY_VM_SIZE}
    h.update(json.dumps(recipe).encode())
    for f in PACKAGED:
        h.update((PACKAGING / f).read_bytes())
    return h.hexdigest()


def template_name(name: str, recipe: str, wheel_md5: str | None) -> str:
    """`<name>-<12 hex>`: a new name whenever the recipe or the wheel changes."""
    digest = hashlib.sha256(f"{recipe}:{wheel_md5 or ''}".encode()).hexdigest()[:12]
    return f"it-{name}-{digest}"


class AgentImage(pulumi.ComponentResource):
    """A gallery image of the jobrunner agent on a GPU base; `gallery_image_id` is its definition."""

    def __init__(
        self,
        name: str,
        args: AgentImageArgs,
        *,
        resource_group: pulumi.Input[str],
        storage_account_name: pulumi.Input[str],
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("trainstack:agent_image:AgentImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        group = resource_group
        publisher, offer, sku, version = args.image.urn
        wheel_name = args.wheel.name

        builder = managedidentity.UserAssignedIdentity(
            f"{name}-builder-identity",
            resource_name_=f"id-{name}-image-builder",
            resource_group_name=group,
            location=args.location,
            tags=tags,
            opts=child,
        )
        gallery = compute.Gallery(
            f"{name}-gallery",
            gallery_name=gallery_name(name),
            resource_group_name=group,
            location=args.location,
            description=f"jobrunner agent images ({name})",
            tags=tags,
            opts=child,
        )
        self.image = compute.GalleryImage(
            f"{name}-image",
            gallery_image_name="jobrunner-agent",
            gallery_name=gallery.name,
            resource_group_name=group,
            location=args.location,
            os_type=compute.OperatingSystemTypes.LINUX,
            os_state=compute.OperatingSystemStateTypes.GENERALIZED,
            hyper_v_generation="V2",
            architecture="x64",
            identifier=compute.GalleryImageIdentifierArgs(
                publisher="trainstack", offer=offer, sku=f"{sku}-{name}"
            ),
            features=[compute.GalleryImageFeatureArgs(name="IsAcceleratedNetworkSupported", value="True")],
            description=f"jobrunner agent on {args.image.base_image}",
            tags=tags,
            # The generation, OS and identifier of an image definition are fixed at creation.
            opts=pulumi.ResourceOptions(
                parent=self, replace_on_changes=["hyperVGeneration", "osType", "osState", "identifier"]
            ),
        )

        container_name = f"agent-image-{name}"[:63].rstrip("-")
        container = storage.BlobContainer(
            f"{name}-files",
            container_name=container_name,
            account_name=storage_account_name,
            resource_group_name=group,
            public_access=storage.PublicAccess.NONE,
            opts=child,
        )
        sources = {
            wheel_name: args.wheel,
            **{f: PACKAGING / f for f in PACKAGED},
        }
        blobs = {
            file: storage.Blob(
                f"{name}-{file}",
                blob_name=file,
                container_name=container.name,
                account_name=storage_account_name,
                resource_group_name=group,
                type=storage.BlobType.BLOCK,
                source=pulumi.FileAsset(str(path)),
                opts=child,
            )
            for file, path in sources.items()
        }
        urls: dict[str, pulumi.Input[str]] = {
            file: pulumi.Output.concat(
                "https://", storage_account_name, ".blob.core.windows.net/", container_name, "/", file
            )
            for file in sources
        }

        container_scope = pulumi.Output.concat(
            roles.storage_account_id(group, storage_account_name),
            "/blobServices/default/containers/",
            container_name,
        )
        grants = [
            roles.assign_role(
                f"{name}-builder-reads-files",
                role=roles.STORAGE_BLOB_DATA_READER,
                principal_id=builder.principal_id,
                scope=container_scope,
                key=(*args.scope, name, "files"),
                description="Image Builder reads the agent's wheel, install script and unit",
                opts=child,
            ),
            roles.assign_role(
                f"{name}-builder-writes-gallery",
                role=roles.CONTRIBUTOR,
                principal_id=builder.principal_id,
                scope=gallery.id,
                key=(*args.scope, name, "gallery"),
                description="Image Builder writes image versions into the gallery",
                opts=child,
            ),
        ]

        vnet_config = None
        if args.build_subnet_id is not None:
            grants.append(self._join_network(name, args, builder.principal_id))
            vnet_config = vmi.VirtualNetworkConfigArgs(
                subnet_id=args.build_subnet_id, proxy_vm_size=PROXY_VM_SIZE
            )
        recipe = recipe_digest(args.image, wheel_name, args.build_subnet_id)
        self.template = vmi.VirtualMachineImageTemplate(
            f"{name}-template",
            image_template_name=blobs[wheel_name].content_md5.apply(
                lambda md5: template_name(name, recipe, md5)
            ),
            resource_group_name=group,
            location=args.location,
            identity=vmi.ImageTemplateIdentityArgs(
                type=vmi.ResourceIdentityType.USER_ASSIGNED, user_assigned_identities=[builder.id]
            ),
            source=vmi.ImageTemplatePlatformImageSourceArgs(
                type="PlatformImage", publisher=publisher, offer=offer, sku=sku, version=version
            ),
            customize=customize_steps(wheel_name, urls, wheel_checksum=wheel_sha256(args.wheel)),
            distribute=[
                vmi.ImageTemplateSharedImageDistributorArgs(
                    type="SharedImage",
                    gallery_image_id=self.image.id,
                    run_output_name=f"{name}-agent",
                    target_regions=[vmi.TargetRegionArgs(name=args.location, replica_count=1)],
                )
            ],
            vm_profile=vmi.ImageTemplateVmProfileArgs(vm_size=BUILD_VM_SIZE, vnet_config=vnet_config),
            build_timeout_in_minutes=BUILD_TIMEOUT_MINUTES,
            auto_run=vmi.ImageTemplateAutoRunArgs(state=vmi.AutoRunState.AUTO_RUN_ENABLED),
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*grants, *blobs.values()],
                # Image Builder refuses updates: any change is a new template (a new name).
                replace_on_changes=["*"],
            ),
        )
        self.gallery_image_id: pulumi.Output[str] = self.image.id
        self.register_outputs({"galleryImageId": self.image.id, "templateName": self.template.name})

    def _join_network(
        self, name: str, args: AgentImageArgs, principal_id: pulumi.Input[str]
    ) -> authorization.RoleAssignment:
        """A custom role that reads the build subnet's VNet and joins its subnets (what Image
        Builder asks for; Network Contributor would also let it rewrite the VNet), defined in
        the VNet's resource group and granted to the builder on the VNet alone."""
        assert args.build_subnet_id is not None
        vnet = vnet_of(args.build_subnet_id)
        vnet_group = vnet.split("/providers/", 1)[0]
        key = (*args.scope, name, "network")
        role = roles.role_guid(key, "image-builder-network-join")
        definition = authorization.RoleDefinition(
            f"{name}-builder-network-role",
            role_definition_id=role,
            # Custom role names are unique in the tenant: the group and workspace make it so.
            role_name=f"Image Builder network join ({name}, {'/'.join(args.scope)})",
            description="Reads the VNet and joins its subnets: what Image Builder needs to build inside it",
            role_type="CustomRole",
            scope=vnet_group,
            assignable_scopes=[vnet_group],
            permissions=[authorization.PermissionArgs(actions=list(NETWORK_JOIN_ACTIONS))],
            opts=pulumi.ResourceOptions(parent=self),
        )
        return roles.assign_role(
            f"{name}-builder-joins-network",
            role=role,
            principal_id=principal_id,
            scope=vnet,
            key=key,
            description="Image Builder puts its build VM in the stack's VNet",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[definition]),
        )
