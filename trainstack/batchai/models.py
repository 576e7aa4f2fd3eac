"""Batch AI's 2018-05-01 job, cluster and file server files as frozen pydantic models.

These models are the converter's own statement of the published schemas (the files given
to `az batchai job create -f`, `az batchai cluster create -f` and
`az batchai file-server create -f`): every field, with the same names, types, enums and
required fields. `trainstack.batchai.schema` turns them into the JSON Schema that input files
are validated against.

Two deliberate differences from Microsoft's schema, both about what the `az` CLI accepted:
- a mount's `accountName` and `credentials` are optional, because the CLI filled them in
  from `--storage-account-name` / `AZURE_BATCHAI_STORAGE_ACCOUNT` (and its key) before
  sending the file;
- ARM template expressions (`"[parameters('n')]"`) are not accepted: they are evaluated by
  ARM deployments only, and the CLI sent them to the service verbatim, which refused them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


# --- shared pieces ---------------------------------------------------------------------


class ResourceId(_Model):
    id: str


class KeyVaultSecretReference(_Model):
    source_vault: ResourceId = Field(alias="sourceVault")
    secret_url: str = Field(alias="secretUrl")


class EnvironmentVariable(_Model):
    name: str
    value: str


class EnvironmentVariableWithSecretValue(_Model):
    name: str
    value: str | None = None
    value_secret_reference: KeyVaultSecretReference | None = Field(None, alias="valueSecretReference")


class AzureStorageCredentialsInfo(_Model):
    account_key: str | None = Field(None, alias="accountKey")
    account_key_secret_reference: KeyVaultSecretReference | None = Field(
        None, alias="accountKeySecretReference"
    )


class AzureFileShareReference(_Model):
    account_name: str | None = Field(None, alias="accountName")
    azure_file_url: str = Field(alias="azureFileUrl")
    credentials: AzureStorageCredentialsInfo | None = None
    relative_mount_path: str = Field(alias="relativeMountPath")
    file_mode: str | None = Field(None, alias="fileMode")
    directory_mode: str | None = Field(None, alias="directoryMode")


class AzureBlobFileSystemReference(_Model):
    account_name: str = Field(alias="accountName")
    container_name: str = Field(alias="containerName")
    credentials: AzureStorageCredentialsInfo | None = None
    relative_mount_path: str = Field(alias="relativeMountPath")
    mount_options: str | None = Field(None, alias="mountOptions")


class FileServerReference(_Model):
    file_server: ResourceId = Field(alias="fileServer")
    source_directory: str | None = Field(None, alias="sourceDirectory")
    relative_mount_path: str = Field(alias="relativeMountPath")
    mount_options: str | None = Field(None, alias="mountOptions")


class UnmanagedFileSystemReference(_Model):
    mount_command: str = Field(alias="mountCommand")
    relative_mount_path: str = Field(alias="relativeMountPath")


class MountVolumes(_Model):
    azure_file_shares: tuple[AzureFileShareReference, ...] = Field((), alias="azureFileShares")
    azure_blob_file_systems: tuple[AzureBlobFileSystemReference, ...] = Field(
        (), alias="azureBlobFileSystems"
    )
    file_servers: tuple[FileServerReference, ...] = Field((), alias="fileServers")
    unmanaged_file_systems: tuple[UnmanagedFileSystemReference, ...] = Field((), alias="unmanagedFileSystems")


# --- job -------------------------------------------------------------------------------


class PrivateRegistryCredentials(_Model):
    username: str
    password: str | None = None
    password_secret_reference: KeyVaultSecretReference | None = Field(None, alias="passwordSecretReference")


class ImageSourceRegistry(_Model):
    server_url: str | None = Field(None, alias="serverUrl")
    image: str
    credentials: PrivateRegistryCredentials | None = None


class ContainerSettings(_Model):
    image_source_registry: ImageSourceRegistry = Field(alias="imageSourceRegistry")
    shm_size: str | None = Field(None, alias="shmSize")


class CntkSettings(_Model):
    language_type: str | None = Field(None, alias="languageType")
    config_file_path: str | None = Field(None, alias="configFilePath")
    python_script_file_path: str | None = Field(None, alias="pythonScriptFilePath")
    python_interpreter_path: str | None = Field(None, alias="pythonInterpreterPath")
    command_line_args: str | None = Field(None, alias="commandLineArgs")
    process_count: int | None = Field(None, alias="processCount")


class PyTorchSettings(_Model):
    python_script_file_path: str = Field(alias="pythonScriptFilePath")
    python_interpreter_path: str | None = Field(None, alias="pythonInterpreterPath")
    command_line_args: str | None = Field(None, alias="commandLineArgs")
    process_count: int | None = Field(None, alias="processCount")
    communication_backend: str | None = Field(None, alias="communicationBackend")


class TensorFlowSettings(_Model):
    python_script_file_path: str = Field(alias="pythonScriptFilePath")
    python_interpreter_path: str | None = Field(None, alias="pythonInterpreterPath")
    master_command_line_args: str | None = Field(None, alias="masterCommandLineArgs")
    worker_command_line_args: str | None = Field(None, alias="workerCommandLineArgs")
    parameter_server_command_line_args: str | None = Field(None, alias="parameterServerCommandLineArgs")
    worker_count: int | None = Field(None, alias="workerCount")
    parameter_server_count: int | None = Field(None, alias="parameterServerCount")


class CaffeSettings(_Model):
    config_file_path: str | None = Field(None, alias="configFilePath")
    python_script_file_path: str | None = Field(None, alias="pythonScriptFilePath")
    python_interpreter_path: str | None = Field(None, alias="pythonInterpreterPath")
    command_line_args: str | None = Field(None, alias="commandLineArgs")
    process_count: int | None = Field(None, alias="processCount")


class Caffe2Settings(_Model):
    python_script_file_path: str = Field(alias="pythonScriptFilePath")
    python_interpreter_path: str | None = Field(None, alias="pythonInterpreterPath")
    command_line_args: str | None = Field(None, alias="commandLineArgs")


class ChainerSettings(_Model):
    python_script_file_path: str = Field(alias="pythonScriptFilePath")
    python_interpreter_path: str | None = Field(None, alias="pythonInterpreterPath")
    command_line_args: str | None = Field(None, alias="commandLineArgs")
    process_count: int | None = Field(None, alias="processCount")


class CustomToolkitSettings(_Model):
    command_line: str | None = Field(None, alias="commandLine")


class CustomMpiSettings(_Model):
    command_line: str = Field(alias="commandLine")
    process_count: int | None = Field(None, alias="processCount")


class HorovodSettings(_Model):
    python_script_file_path: str = Field(alias="pythonScriptFilePath")
    python_interpreter_path: str | None = Field(None, alias="pythonInterpreterPath")
    command_line_args: str | None = Field(None, alias="commandLineArgs")
    process_count: int | None = Field(None, alias="processCount")


class JobPreparation(_Model):
    command_line: str = Field(alias="commandLine")


class InputDirectory(_Model):
    id: str
    path: str


class OutputDirectory(_Model):
    id: str
    path_prefix: str = Field(alias="pathPrefix")
    path_suffix: str | None = Field(None, alias="pathSuffix")


class JobConstraints(_Model):
    max_wall_clock_time: str | None = Field(None, alias="maxWallClockTime")


Toolkit = (
    CntkSettings
    | PyTorchSettings
    | TensorFlowSettings
    | CaffeSettings
    | Caffe2Settings
    | ChainerSettings
    | CustomToolkitSettings
    | CustomMpiSettings
    | HorovodSettings
)

# Field name in the file -> attribute on JobProperties.
TOOLKIT_FIELDS: dict[str, str] = {
    "cntkSettings": "cntk_settings",
    "pyTorchSettings": "py_torch_settings",
    "tensorFlowSettings": "tensor_flow_settings",
    "caffeSettings": "caffe_settings",
    "caffe2Settings": "caffe2_settings",
    "chainerSettings": "chainer_settings",
    "customToolkitSettings": "custom_toolkit_settings",
    "customMpiSettings": "custom_mpi_settings",
    "horovodSettings": "horovod_settings",
}


class JobProperties(_Model):
    scheduling_priority: Literal["low", "normal", "high"] | None = Field(None, alias="schedulingPriority")
    cluster: ResourceId | None = None
    mount_volumes: MountVolumes | None = Field(None, alias="mountVolumes")
    node_count: int | None = Field(None, alias="nodeCount")
    container_settings: ContainerSettings | None = Field(None, alias="containerSettings")
    cntk_settings: CntkSettings | None = Field(None, alias="cntkSettings")
    py_torch_settings: PyTorchSettings | None = Field(None, alias="pyTorchSettings")
    tensor_flow_settings: TensorFlowSettings | None = Field(None, alias="tensorFlowSettings")
    caffe_settings: CaffeSettings | None = Field(None, alias="caffeSettings")
    caffe2_settings: Caffe2Settings | None = Field(None, alias="caffe2Settings")
    chainer_settings: ChainerSettings | None = Field(None, alias="chainerSettings")
    custom_toolkit_settings: CustomToolkitSettings | None = Field(None, alias="customToolkitSettings")
    custom_mpi_settings: CustomMpiSettings | None = Field(None, alias="customMpiSettings")
    horovod_settings: HorovodSettings | None = Field(None, alias="horovodSettings")
    job_preparation: JobPreparation | None = Field(None, alias="jobPreparation")
    std_out_err_path_prefix: str | None = Field(None, alias="stdOutErrPathPrefix")
    input_directories: tuple[InputDirectory, ...] = Field((), alias="inputDirectories")
    output_directories: tuple[OutputDirectory, ...] = Field((), alias="outputDirectories")
    environment_variables: tuple[EnvironmentVariable, ...] = Field((), alias="environmentVariables")
    secrets: tuple[EnvironmentVariableWithSecretValue, ...] = ()
    constraints: JobConstraints | None = None

    def toolkits(self) -> dict[str, Toolkit]:
        """The toolkit settings the file gives, by their field name (Batch AI allows one)."""
        out: dict[str, Toolkit] = {}
        for field, attr in TOOLKIT_FIELDS.items():
            value = getattr(self, attr)
            if value is not None:
                out[field] = value
        return out


class JobFile(_Model):
    """`az batchai job create -f job.json`: `{"properties": {...}}`."""

    schema_: str | None = Field(None, alias="$schema")
    properties: JobProperties


# --- cluster ---------------------------------------------------------------------------


class ManualScaleSettings(_Model):
    target_node_count: int = Field(alias="targetNodeCount")
    node_deallocation_option: Literal["requeue", "terminate", "waitforjobcompletion"] | None = Field(
        None, alias="nodeDeallocationOption"
    )


class AutoScaleSettings(_Model):
    minimum_node_count: int = Field(alias="minimumNodeCount")
    maximum_node_count: int = Field(alias="maximumNodeCount")
    initial_node_count: int | None = Field(None, alias="initialNodeCount")


class ScaleSettings(_Model):
    manual: ManualScaleSettings | None = None
    auto_scale: AutoScaleSettings | None = Field(None, alias="autoScale")


class ImageReference(_Model):
    publisher: str
    offer: str
    sku: str
    version: str | None = None
    virtual_machine_image_id: str | None = Field(None, alias="virtualMachineImageId")


class VirtualMachineConfiguration(_Model):
    image_reference: ImageReference | None = Field(None, alias="imageReference")


class SetupTask(_Model):
    command_line: str = Field(alias="commandLine")
    environment_variables: tuple[EnvironmentVariable, ...] = Field((), alias="environmentVariables")
    secrets: tuple[EnvironmentVariableWithSecretValue, ...] = ()
    std_out_err_path_prefix: str = Field(alias="stdOutErrPathPrefix")


class AppInsightsReference(_Model):
    component: ResourceId
    instrumentation_key: str | None = Field(None, alias="instrumentationKey")
    instrumentation_key_secret_reference: KeyVaultSecretReference | None = Field(
        None, alias="instrumentationKeySecretReference"
    )


class PerformanceCountersSettings(_Model):
    app_insights_reference: AppInsightsReference = Field(alias="appInsightsReference")


class NodeSetup(_Model):
    setup_task: SetupTask | None = Field(None, alias="setupTask")
    mount_volumes: MountVolumes | None = Field(None, alias="mountVolumes")
    performance_counters_settings: PerformanceCountersSettings | None = Field(
        None, alias="performanceCountersSettings"
    )


class UserAccountSettings(_Model):
    admin_user_name: str = Field(alias="adminUserName")
    admin_user_ssh_public_key: str | None = Field(None, alias="adminUserSshPublicKey")
    admin_user_password: str | None = Field(None, alias="adminUserPassword")


class ClusterProperties(_Model):
    vm_size: str | None = Field(None, alias="vmSize")
    vm_priority: Literal["dedicated", "lowpriority"] | None = Field(None, alias="vmPriority")
    scale_settings: ScaleSettings | None = Field(None, alias="scaleSettings")
    virtual_machine_configuration: VirtualMachineConfiguration | None = Field(
        None, alias="virtualMachineConfiguration"
    )
    node_setup: NodeSetup | None = Field(None, alias="nodeSetup")
    user_account_settings: UserAccountSettings | None = Field(None, alias="userAccountSettings")
    subnet: ResourceId | None = None


class ClusterFile(_Model):
    """`az batchai cluster create -f cluster.json`: `{"properties": {...}}`."""

    schema_: str | None = Field(None, alias="$schema")
    properties: ClusterProperties


# --- file server -----------------------------------------------------------------------


class SshConfiguration(_Model):
    public_ips_to_allow: tuple[str, ...] | None = Field(None, alias="publicIPsToAllow")
    user_account_settings: UserAccountSettings = Field(alias="userAccountSettings")


class DataDisks(_Model):
    disk_size_in_gb: int = Field(alias="diskSizeInGB")
    caching_type: Literal["none", "readonly", "readwrite"] | None = Field(None, alias="cachingType")
    disk_count: int = Field(alias="diskCount")
    storage_account_type: Literal["Standard_LRS", "Premium_LRS"] = Field(alias="storageAccountType")


class FileServerProperties(_Model):
    vm_size: str | None = Field(None, alias="vmSize")
    ssh_configuration: SshConfiguration | None = Field(None, alias="sshConfiguration")
    data_disks: DataDisks | None = Field(None, alias="dataDisks")
    subnet: ResourceId | None = None


class FileServerFile(_Model):
    """`az batchai file-server create -f nfs.json`: `{"properties": {...}}`."""

    schema_: str | None = Field(None, alias="$schema")
    properties: FileServerProperties
