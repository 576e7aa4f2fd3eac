"""Rules for GPU nodes: how they can be reached (SSH, public IPs), how they scale (evictable
capacity from zero, idle scale-down) and whether their VM size still exists.

Azure ML fills defaults that open things up: a cluster's `enableNodePublicIp` defaults to
true and `remoteLoginPortPublicAccess: NotSpecified` means open unless a subnet is set. The
rules judge a missing field by that default, so a cluster that says nothing is flagged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from jobrunner.durations import iso_duration_seconds
from policies.capacity import capacities
from policies.model import Policy, PolicyContext, Resource, Severity, Violation
from policies.tokens import ML_COMPUTE, SCALE_SET

_AML = "properties.properties."


def _is_aml(r: Resource) -> bool:
    return r.type == ML_COMPUTE and r.get("properties.computeType") == "AmlCompute"


def _ssh_exposure(r: Resource) -> str | None:
    """Why a cluster's SSH port is reachable from the internet, or None when it is not."""
    if not _is_aml(r):
        return None
    access = r.get(_AML + "remoteLoginPortPublicAccess") or "NotSpecified"
    if access == "Disabled" or (access == "NotSpecified" and r.get(_AML + "subnet.id") is not None):
        return None
    return "Enabled" if access == "Enabled" else "NotSpecified and no subnet, which Azure treats as open"


def _ssh_closed(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    why = _ssh_exposure(r)
    if why is None:
        return
    credentials = r.get(_AML + "userAccountCredentials") or {}
    if credentials.get("adminUserPassword"):
        yield Violation(
            r,
            f"SSH port is open to the internet ({why}) and accepts a password",
            "log in with a key only: drop `adminUserPassword`, set `adminUserSshPublicKey`",
        )
    elif not credentials.get("adminUserSshPublicKey"):
        yield Violation(
            r, f"SSH port is open to the internet ({why}) though the stack asks for no SSH access"
        )


def _ssh_private_in_prod(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    why = _ssh_exposure(r)
    if ctx.is_prod and why is not None:
        yield Violation(r, f"public SSH on production nodes ({why})")


def _no_public_ip(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    if ctx.is_prod:
        yield from public_ip_violations(r)


def public_ip_violations(r: Resource) -> Iterator[Violation]:
    """A cluster's or pool's nodes that get public IP addresses, in any environment."""
    if _is_aml(r) and r.get(_AML + "enableNodePublicIp") is not False:
        state = "true" if r.get(_AML + "enableNodePublicIp") else "not set (Azure's default: true)"
        yield Violation(r, f"cluster nodes get public IP addresses (enableNodePublicIp: {state})")
    elif r.type == SCALE_SET:
        nics = r.get("virtualMachineProfile.networkProfile.networkInterfaceConfigurations") or []
        for nic in nics:
            for ip in nic.get("ipConfigurations") or [] if isinstance(nic, dict) else []:
                if isinstance(ip, dict) and ip.get("publicIPAddressConfiguration"):
                    yield Violation(
                        r,
                        f"pool nodes get public IP addresses (NIC {nic.get('name', '?')}, "
                        f"IP configuration {ip.get('name', '?')})",
                        "remove `publicIPAddressConfiguration` from the scale set's IP configurations",
                    )


def _evictable_from_zero(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[Violation]:
    for c in capacities(resources):
        if c.evictable and c.min_nodes > 0:
            yield Violation(
                c.resource,
                f"{'low-priority' if c.kind == 'cluster' else 'Spot'} {c.kind} keeps {c.min_nodes} "
                f"node(s) at minimum: evicted nodes are re-requested and billed while idle",
            )


def iso_seconds(text: str) -> float | None:
    """Seconds in an ISO 8601 duration such as `PT120S` or `PT1H30M`; None if it is not one."""
    try:
        return iso_duration_seconds(text)
    except ValueError:
        return None


IDLE_LIMIT_SECONDS = 30 * 60


def _idle_scale_down(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    if ctx.is_prod or not _is_aml(r):
        return
    idle = r.get(_AML + "scaleSettings.nodeIdleTimeBeforeScaleDown")
    if idle is None:
        return  # Azure's default is 120 seconds
    seconds = iso_seconds(str(idle))
    if seconds is None:
        yield Violation(r, f"idle time before scale-down `{idle}` is not an ISO 8601 duration")
    elif seconds > IDLE_LIMIT_SECONDS:
        yield Violation(r, f"idle nodes stay up {seconds / 60:g} minutes before scale-down (limit 30)")


def _vm_size(r: Resource) -> str | None:
    if _is_aml(r):
        size = r.get(_AML + "vmSize")
    elif r.type == SCALE_SET:
        size = r.get("sku.name")
    else:
        return None
    return size if isinstance(size, str) else None


def _retirement(r: Resource, ctx: PolicyContext, *, past: bool) -> Iterator[Violation]:
    """A violation when the resource's VM size is retired (`past`) or retires within a year."""
    size = _vm_size(r)
    sku = ctx.sku(size) if size else None
    if sku is None or sku.retired is None or sku.retired_on(ctx.today) != past:
        return
    if not past and (sku.retired - ctx.today).days > RETIRING_WARNING_DAYS:
        return
    tense = "was retired" if past else "retires"
    successor = f"; its successor is {sku.successor}" if sku.successor else ""
    fix = f"move to {sku.successor}" if sku.successor else "move to a current GPU size from the catalog"
    yield Violation(r, f"VM size {size} {tense} on {sku.retired.isoformat()}{successor}", fix)


RETIRING_WARNING_DAYS = 365


def _not_retired(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    return _retirement(r, ctx, past=True)


def _not_retiring(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    return _retirement(r, ctx, past=False)


POLICIES: tuple[Policy, ...] = (
    Policy(
        "compute-ssh-closed",
        "Cluster SSH closed unless asked for, and key-only",
        Severity.MANDATORY,
        "set `remoteLoginPortPublicAccess: Disabled`, or ask for SSH with a public key and no password",
        frozenset({ML_COMPUTE}),
        check=_ssh_closed,
    ),
    Policy(
        "compute-ssh-private-in-prod",
        "No public SSH to production nodes",
        Severity.MANDATORY,
        "set `remoteLogin: false` (port Disabled) and reach prod nodes through the VNet (Bastion, VPN)",
        frozenset({ML_COMPUTE}),
        check=_ssh_private_in_prod,
    ),
    Policy(
        "compute-no-public-ip",
        "No public IPs on nodes in prod",
        Severity.MANDATORY,
        "set `enableNodePublicIp: false` and put the cluster on a subnet with outbound access",
        frozenset({ML_COMPUTE, SCALE_SET}),
        check=_no_public_ip,
    ),
    Policy(
        "evictable-scales-from-zero",
        "Low-priority and Spot capacity scales from 0",
        Severity.ADVISORY,
        "set the minimum node count to 0",
        check_stack=_evictable_from_zero,
    ),
    Policy(
        "compute-idle-scale-down",
        "Idle nodes scale down within 30 minutes outside prod",
        Severity.ADVISORY,
        "set `nodeIdleTimeBeforeScaleDown` to at most `PT30M`",
        frozenset({ML_COMPUTE}),
        check=_idle_scale_down,
    ),
    Policy(
        "gpu-sku-not-retired",
        "GPU sizes are not retired",
        Severity.MANDATORY,
        "move to a current GPU size from the catalog",
        frozenset({ML_COMPUTE, SCALE_SET}),
        check=_not_retired,
    ),
    Policy(
        "gpu-sku-retiring",
        "GPU sizes do not retire within a year",
        Severity.ADVISORY,
        "plan the move to a current GPU size from the catalog",
        frozenset({ML_COMPUTE, SCALE_SET}),
        check=_not_retiring,
    ),
)
