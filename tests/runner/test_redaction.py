"""Store credentials stay out of what people and logs see: no SAS in a store's description or
its errors, no account key in any JSON view, and the local emulator's key is the checkout's own."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.storage.blob import BlobServiceClient
from typer.testing import CliRunner

from jobrunner.cli.main import app
from jobrunner.errors import StoreError
from jobrunner.local.azurite import (
    ACCOUNT_KEY,
    KEY_FILE,
    connection_string,
    ensure_local_azurite,
    read_local_state,
    stop_local_azurite,
)
from jobrunner.node.config import AgentConfig, render_cloud_init
from jobrunner.node.isolation import redact_store, without_query
from jobrunner.store.client import Retry, Store

SAS = "sv=2024-01-01&ss=bq&srt=sco&sp=rwdl&se=2030-01-01&sig=TOPSECRETSIGNATURE"


def test_urls_lose_their_query_and_connection_strings_their_secrets() -> None:
    assert without_query(f"GET https://st.blob.core.windows.net/runs/a?{SAS} failed") == (
        "GET https://st.blob.core.windows.net/runs/a failed"
    )
    shown = redact_store(f"BlobEndpoint=https://st.blob.core.windows.net;SharedAccessSignature={SAS}")
    assert "TOPSECRET" not in shown and "SharedAccessSignature=[redacted]" in shown
    assert "c2VjcmV0" not in redact_store(connection_string(1, 2, key="c2VjcmV0"))
    assert redact_store("https://st.blob.core.windows.net") == "https://st.blob.core.windows.net"


def test_a_sas_store_names_itself_and_fails_without_its_token() -> None:
    target = (
        "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;"
        f"SharedAccessSignature={SAS}"
    )
    store = Store.connect(target, retry=Retry(attempts=1))
    assert "TOPSECRET" not in store.description and "127.0.0.1:9" in store.description
    with pytest.raises(StoreError) as caught:
        store.get("runs", "x/spec.json")
    assert "TOPSECRET" not in str(caught.value) and "sig=" not in str(caught.value)


def test_check_config_json_hides_the_account_key(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        render_cloud_init(AgentConfig(store=connection_string(1, 2, key="c2VjcmV0a2V5"), pool="p1"))
    )
    result = CliRunner().invoke(app, ["agent", "--check-config", str(config), "--json"])
    assert result.exit_code == 0, result.stderr
    assert "c2VjcmV0a2V5" not in result.stdout and "AccountKey=[redacted]" in result.stdout


def test_the_local_azurite_takes_this_checkouts_key_only(tmp_path: Path) -> None:
    """A command without JOBRUNNER_STORE starts the checkout's Azurite, as a user's would."""
    state = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "JOBRUNNER_STORE"}
    env.update(JOBRUNNER_HOME=str(state), PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "jobrunner", "list", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        running = read_local_state(state)
        assert running is not None and running.key != ACCOUNT_KEY
        assert stat.S_IMODE(os.stat(state / KEY_FILE).st_mode) == 0o600
        again = ensure_local_azurite(state)  # a later command finds it, with the same key
        assert again.connection_string == running.connection_string
        good = BlobServiceClient.from_connection_string(running.connection_string, retry_total=0)
        good.create_container("keyed")
        published = connection_string(running.blob_port, running.queue_port)  # the well-known key
        bad = BlobServiceClient.from_connection_string(published, retry_total=0)
        with pytest.raises((ClientAuthenticationError, HttpResponseError)) as refused:
            bad.get_container_client("keyed").get_container_properties()
        assert getattr(refused.value, "status_code", 403) == 403
    finally:
        stop_local_azurite(state)
