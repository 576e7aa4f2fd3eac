"""The end-to-end migration tests run on the same kind of 2-agent local pool as the runner's."""

from tests.runner.conftest import pool_env  # noqa: F401  (a fixture, used by name)
