"""Where a datastore's files live: a datastore name -> the blob container (and store) holding it.

    datastores = Datastores.from_config(agent_config, source="/etc/jobrunner/agent.yaml")
    store, container = datastores.resolve(job_store, "training_data")   # training-data

Azure ML datastore names may hold `_` and capitals; blob container names may not. On a
deployed pool the agent config maps each datastore to its container (`datastores:` in
`/etc/jobrunner/agent.yaml`, written by the GpuPool from the stack's datastores), optionally
in another storage account of the same sign-in. A name the config does not map (every name
on a local pool) is the container named after it: lowercased, `_` written as `-`, so
`training_data` is `training-data` and `workspaceblobstore` stays itself.

Failure modes: ConfigError when an unmapped name gives no valid container name (shorter than
3 characters, longer than 63, or with characters outside letters, digits, `-` and `_`); it
names the agent config file when there is one, and says how to map the name.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from jobrunner.config import CONTAINER_NAME, AgentConfig, DatastoreLocation
from jobrunner.errors import ConfigError, Problem
from jobrunner.store import Store


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
    ) -> None:
        """`locations`: mapped names; `home_account`: the job store's account (a datastore
        mapped there needs no other store); `source`: the config file, named in errors."""
        self._locations = dict(locations or {})
        self._home_account = home_account
        self._source = source
        self._stores: dict[str, Store] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: AgentConfig, *, source: str | None = None) -> Datastores:
        """The map an agent config declares (`datastores:`), for the config's store."""
        return cls(config.datastores, home_account=config.store_account, source=source)

    @property
    def mapped(self) -> dict[str, str]:
        """Mapped datastore name -> its container (for people: `jobrunner agent --check-config`)."""
        return {name: loc.container for name, loc in sorted(self._locations.items())}

    def container(self, name: str) -> str:
        """The blob container holding datastore `name`. ConfigError when unmapped and the name
        gives no valid container name."""
        found = self._locations.get(name)
        if found is not None:
            return found.container
        derived = default_container(name)
        if derived is None:
            where = f"`datastores:` in {self._source}" if self._source else "the pool's agent config"
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
