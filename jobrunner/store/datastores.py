"""Where a datastore's files live: a datastore name -> the blob container (and store) holding it.

    datastores = Datastores.from_config(agent_config, source="/etc/jobrunner/agent.yaml")
    store, container = datastores.resolve(job_store, "training_data")   # training-data

Azure ML datastore names may hold `_` and capitals; blob container names may not. On a
deployed pool the agent config maps each datastore to its container (`datastores:` in
`/etc/jobrunner/agent.yaml`, written by the GpuPool from the stack's datastores), optionally
in another storage account of the same sign-in. A name the config does not map (every name
on a local pool) is the container named after it: lowercased, `_` written as `-`, so
`training_data` is `training-data` and `workspaceblobstore` stays itself. A deployed pool's map
is strict (`Datastores.from_config` for a store that is an account URL, or any map): a name it
does not map is refused, except `workspaceblobstore`. The runner's own containers (`runs`,
`pools`) are never a datastore, mapped or not: a job could otherwise read or rewrite another
run's spec and outputs through them.

Failure modes: ConfigError for `runs`/`pools`, for a name a strict map lacks, and when an
unmapped name gives no valid container name (shorter than
3 characters, longer than 63, or with characters outside letters, digits, `-` and `_`); it
names the agent config file when there is one, and says how to map the name.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from jobrunner.errors import ConfigError, Problem
from jobrunner.node.config import CONTAINER_NAME, AgentConfig, DatastoreLocation
from jobrunner.spec.uri import RESERVED_DATASTORES
from jobrunner.store.client import DEFAULT_DATASTORE, Store


def default_container(name: str) -> str | None:
    """The container an unmapped datastore `name` lives in, or None when no valid one follows."""
    candidate = name.lower().replace("_", "-")
    return candidate if CONTAINER_NAME.fullmatch(candidate) else None


class Datastores:
    """The datastore map of one job store (see the module docstring). Thread-safe."""

    def __init__(
        self,
        locations: Mapping[str, DatastoreLocation] | None = None,
        *,
        home_account: str | None = None,
        source: str | None = None,
        strict: bool = False,
    ) -> None:
        """`locations`: mapped names; `home_account`: the job store's account (a datastore
        mapped there needs no other store); `source`: the config file, named in errors;
        `strict`: only mapped names (and `workspaceblobstore`) resolve."""
        self._locations = dict(locations or {})
        self._strict = strict
        self._home_account = home_account
        self._source = source
        self._stores: dict[str, Store] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: AgentConfig, *, source: str | None = None) -> Datastores:
        """The map an agent config declares (`datastores:`), for the config's store; strict on a
        deployed pool (a store account URL, or any map)."""
        strict = config.store_account is not None or bool(config.datastores)
        return cls(config.datastores, home_account=config.store_account, source=source, strict=strict)

    @property
    def mapped(self) -> dict[str, str]:
        """Mapped datastore name -> its container (for people: `jobrunner agent --check-config`)."""
        return {name: loc.container for name, loc in sorted(self._locations.items())}

    def container(self, name: str) -> str:
        """The blob container holding datastore `name`. ConfigError when unmapped and the name
        gives no valid container name, for a name a strict map lacks, and for the runner's own
        containers."""
        where = f"`datastores:` in {self._source}" if self._source else "the pool's agent config"
        found = self._locations.get(name)
        derived = found.container if found is not None else default_container(name)
        if name.lower().replace("_", "-") in RESERVED_DATASTORES or derived in RESERVED_DATASTORES:
            raise ConfigError(
                [
                    Problem(
                        self._source,
                        f"datastores.{name}",
                        f"datastore {name!r} would be the runner's own container `{derived or name}`, "
                        "which holds every run's spec, status and outputs",
                        "name one of the pool's datastores",
                    )
                ]
            )
        if found is not None:
            return found.container
        if self._strict and name != DEFAULT_DATASTORE:
            raise ConfigError(
                [
                    Problem(
                        self._source,
                        f"datastores.{name}",
                        f"datastore {name!r} is not one of this pool's (mapped: {sorted(self._locations)})",
                        f"use a mapped datastore, or map it in {where} (the stack's pool `datastores`)",
                    )
                ]
            )
        if derived is None:
            raise ConfigError(
                [
                    Problem(
                        self._source,
                        f"datastores.{name}",
                        f"datastore {name!r} is not mapped and makes no valid blob container name "
                        "(3-63 lowercase letters, digits or single `-`)",
                        f"map it to its container in {where}, e.g. `{name}: {{container: my-data}}`",
                    )
                ]
            )
        return derived

    def resolve(self, store: Store, name: str) -> tuple[Store, str]:
        """(store, container) holding datastore `name`: `store` itself unless the map puts the
        datastore in another storage account, then that account's store (same sign-in)."""
        container = self.container(name)
        found = self._locations.get(name)
        account = found.account if found is not None else None
        if account is None or account == self._home_account:
            return store, container
        with self._lock:
            other = self._stores.get(account)
            if other is None:
                other = Store.connect(f"https://{account}.blob.core.windows.net", retry=store.retry)
                self._stores[account] = other
        return other, container


LOCAL = Datastores()  # no map: every datastore is the container named after it
