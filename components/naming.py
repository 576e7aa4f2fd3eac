"""Names Azure restricts, derived from the names a person chose.

Storage accounts (3-24 lowercase letters and digits), key vaults (3-24 letters, digits and
`-`) and container registries (5-50 letters and digits) need globally unique names, so a
short hash of the resource group and workspace names is appended: the same stack always
derives the same names, two stacks never collide. `check_*` raise ValueError before any
resource is declared, so a bad name never reaches Azure.
"""

from __future__ import annotations

import hashlib
import re

STORAGE_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
KEY_VAULT = re.compile(r"[A-Za-z](?!.*--)[A-Za-z0-9-]{1,22}[A-Za-z0-9]")
REGISTRY = re.compile(r"[A-Za-z0-9]{5,50}")


def short_hash(*parts: str, length: int = 6) -> str:
    """A stable lowercase hex digest of `parts` (not a secret: only for uniqueness)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


def _alnum(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def storage_account_name(prefix: str, *scope: str) -> str:
    """`<prefix><alnum of scope[-1]><hash>`, 24 characters at most."""
    suffix = short_hash(*scope)
    return check(
        STORAGE_ACCOUNT, (prefix + _alnum(scope[-1]))[: 24 - len(suffix)] + suffix, "storage account"
    )


def key_vault_name(*scope: str) -> str:
    suffix = short_hash(*scope)
    stem = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", scope[-1].lower())).strip("-")
    return check(KEY_VAULT, f"kv-{stem}"[: 24 - len(suffix) - 1].rstrip("-") + "-" + suffix, "key vault")


def registry_name(*scope: str) -> str:
    suffix = short_hash(*scope)
    return check(REGISTRY, ("cr" + _alnum(scope[-1]))[: 50 - len(suffix)] + suffix, "container registry")


def check(pattern: re.Pattern[str], name: str, what: str) -> str:
    """`name` if Azure accepts it for `what`, else ValueError naming the rule."""
    if not pattern.fullmatch(name):
        raise ValueError(f"{what} name {name!r} is not valid for Azure (pattern {pattern.pattern})")
    return name
