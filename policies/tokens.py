"""The azure-native 3.x type tokens the rules look at (as a plan or CrossGuard lists them)."""

from __future__ import annotations

STORAGE_ACCOUNT = "azure-native:storage:StorageAccount"
KEY_VAULT = "azure-native:keyvault:Vault"
ML_WORKSPACE = "azure-native:machinelearningservices:Workspace"
ML_COMPUTE = "azure-native:machinelearningservices:Compute"
ML_DATASTORE = "azure-native:machinelearningservices:Datastore"
SCALE_SET = "azure-native:compute:VirtualMachineScaleSet"
AUTOSCALE = "azure-native:monitor:AutoscaleSetting"
CONTAINER_REGISTRY = "azure-native:containerregistry:Registry"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
IMAGE_TEMPLATE = "azure-native:virtualmachineimages:VirtualMachineImageTemplate"

# Types that accept a top-level `tags` input in azure-native 3.29 (checked against the SDK
# by the tests). Datastores, jobs and role assignments carry no ARM tags.
TAGGABLE = frozenset(
    {
        "azure-native:resources:ResourceGroup",
        STORAGE_ACCOUNT,
        KEY_VAULT,
        ML_WORKSPACE,
        ML_COMPUTE,
        SCALE_SET,
        AUTOSCALE,
        CONTAINER_REGISTRY,
        "azure-native:applicationinsights:Component",
        "azure-native:operationalinsights:Workspace",
        "azure-native:compute:Gallery",
        "azure-native:compute:GalleryImage",
        IMAGE_TEMPLATE,
        "azure-native:managedidentity:UserAssignedIdentity",
        "azure-native:network:VirtualNetwork",
        "azure-native:network:NetworkSecurityGroup",
        "azure-native:network:PrivateEndpoint",
        "azure-native:privatedns:PrivateZone",
        "azure-native:privatedns:VirtualNetworkLink",
    }
)
