"""Which container image a registered Azure ML environment stands for on a pool.

A job file names a registered environment the way Azure ML does:

    environment: azureml:<name>@latest           # the newest version
    environment: azureml:<name>:<version>
    environment: azureml:/subscriptions/.../workspaces/<ws>/environments/<name>/versions/<v>
    environment: azureml://registries/<registry>/environments/<name>/versions/<v>
    environment: azureml://registries/<registry>/environments/<name>/labels/latest

Those live in a workspace or registry that a pool cannot ask. `resolve_environment` maps one to
an image, first through the pool's `environments` map (`<name>:<version>`, then `<name>`), then
by Azure ML's curated-environment rule:

    azureml:AzureML-<name>@latest / azureml://registries/azureml/environments/<name>/labels/latest
        -> mcr.microsoft.com/azureml/curated/<name>:latest
    azureml:AzureML-<name>:<version> / .../environments/<name>/versions/<version>
        -> mcr.microsoft.com/azureml/curated/<name>:<version>

The rule is how Microsoft publishes them (Azure/azureml-assets): each environment asset's
`environment.yaml` names its image `azureml/curated/<asset name>` with `publish.location: mcr`
(hostname `mcr.microsoft.com`, `scripts/azureml-assets/azureml/assets/config.py`), and the
publishing script tags it with the asset's version and `latest`
(`scripts/azureml-assets/azureml/assets/environment/create_import_config.py`). In a workspace
the same environments carry the prefix `AzureML-` (Azure ML's "Manage environments" how-to).
That a workspace's version numbers equal the registry's tags is inferred, not documented: a
pool's map overrides the rule for any name (docs/job-file.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

CURATED_PREFIX = "AzureML-"
CURATED_REGISTRY = "azureml"  # the registry that holds the curated environments
CURATED_IMAGES = "mcr.microsoft.com/azureml/curated"
LATEST = "latest"

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
# Keys of a pool's map: `<name>` (any version) or `<name>:<version>`.
MAP_KEY = re.compile(rf"{_NAME}(:[A-Za-z0-9][A-Za-z0-9_.:-]*)?")
_SHORT = re.compile(rf"^azureml:(?P<name>{_NAME})(?:@(?P<label>latest)|:(?P<version>\S+))?$")
_ARM = re.compile(
    rf"^azureml:/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/"
    rf"workspaces/[^/]+/environments/(?P<name>{_NAME})/versions/(?P<version>[^/]+)$",
    re.IGNORECASE,
)
_REGISTRY = re.compile(
    rf"^azureml://registries/(?P<registry>[^/]+)/environments?/(?P<name>{_NAME})"
    rf"/(?:versions/(?P<version>[^/]+)|labels/(?P<label>latest))$"
)


@dataclass(frozen=True)
class EnvironmentRef:
    """A registered environment as a job file names it: `version` None means the latest."""

    text: str
    name: str
    version: str | None = None
    registry: str | None = None

    @property
    def key(self) -> str:
        """The pool map key that names exactly this environment."""
        return f"{self.name}:{self.version}" if self.version else self.name

    @property
    def curated_name(self) -> str | None:
        """The curated environment's asset name, or None when this is not a curated one."""
        if self.registry is not None:
            return self.name if self.registry == CURATED_REGISTRY else None
        if self.name.lower().startswith(CURATED_PREFIX.lower()) and len(self.name) > len(CURATED_PREFIX):
            return self.name[len(CURATED_PREFIX) :]
        return None


@dataclass(frozen=True)
class Resolved:
    """The image an environment runs in and how that was decided (said in notes)."""

    image: str
    how: str


def parse_environment_ref(text: str) -> EnvironmentRef:
    """`text` as a registered environment. Raises ValueError (with the forms a pool reads)."""
    for pattern in (_SHORT, _ARM, _REGISTRY):
        m = pattern.match(text)
        if m:
            groups = m.groupdict()
            return EnvironmentRef(text, groups["name"], groups.get("version"), groups.get("registry"))
    raise ValueError(
        f"`{text}` is not a registered environment a pool can look up: write azureml:<name>@latest, "
        "azureml:<name>:<version> or azureml://registries/<registry>/environments/<name>/versions/<v>"
    )


def resolve_environment(ref: EnvironmentRef, environments: Mapping[str, str]) -> Resolved | None:
    """The image of `ref`: the pool map's `<name>:<version>`, then `<name>`, then the curated
    rule; None when none applies."""
    keys = ([f"{ref.name}:{ref.version}"] if ref.version else []) + [ref.name]
    for key in keys:
        if key in environments:
            return Resolved(environments[key], f"the pool's environments map (`{key}`)")
    curated = ref.curated_name
    if curated is not None:
        image = f"{CURATED_IMAGES}/{curated.lower()}:{ref.version or LATEST}"
        return Resolved(image, "Azure ML's curated-environment rule")
    return None


def unresolved_fix(ref: EnvironmentRef, pool: str | None = None) -> str:
    """What to add so that `ref` resolves: the map key, in the pool's stack or agent config."""
    where = f"pool {pool!r}" if pool else "the pool"
    return (
        f"add `{ref.key}: <image>` to the `environments` map of {where} (trainstack:pools[].environments "
        "in the stack, or `environments` in the agent config), or write `environment: {image: <image>}`"
    )


def check_map(environments: Mapping[str, str]) -> dict[str, str]:
    """An environments map as the agent config and the stack take it. Raises ValueError
    naming the bad key or image."""
    for key, image in environments.items():
        if not MAP_KEY.fullmatch(key) or key.startswith("azureml:"):
            raise ValueError(
                f"environment key {key!r}: write `<name>` or `<name>:<version>` as the job file names "
                "it after `azureml:` (e.g. `my-env` or `my-env:3`)"
            )
        if not image.strip() or any(c.isspace() for c in image):
            raise ValueError(f"environment {key!r}: {image!r} is not an image name")
    return dict(environments)
