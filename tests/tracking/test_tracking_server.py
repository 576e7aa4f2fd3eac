"""The local tracking server: started on demand, reused, and started again on the same port
after a stop, so the URI recorded with each run stays readable (real `mlflow server`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner.errors import TrackingError
from jobrunner.local.tracking_server import (
    answers,
    ensure_local_tracking,
    read_local_tracking,
    revive_local_tracking,
    stop_local_tracking,
)

pytestmark = pytest.mark.slow


def test_a_stopped_local_server_comes_back_on_its_port_for_its_runs(tmp_path: Path) -> None:
    first = ensure_local_tracking(tmp_path)
    try:
        assert ensure_local_tracking(tmp_path).pid == first.pid  # reused, not a second one
        assert (tmp_path / "mlflow" / "mlflow.db").exists()
        assert stop_local_tracking(tmp_path) and read_local_tracking(tmp_path) is None
        revive_local_tracking("http://127.0.0.1:1", tmp_path)  # not ours: left alone
        assert read_local_tracking(tmp_path) is None
        revive_local_tracking(first.uri, tmp_path)
        again = read_local_tracking(tmp_path)
        assert again is not None and again.uri == first.uri and answers(first.uri)
    finally:
        stop_local_tracking(tmp_path)


def test_a_taken_port_is_refused_rather_than_orphaning_the_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    monkeypatch.setattr("jobrunner.local.tracking_server.PORT_PATIENCE_S", 0.5)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "mlflow.json").write_text(f'{{"pid": 1, "port": {port}, "log": "x"}}')
        with pytest.raises(TrackingError) as caught:
            ensure_local_tracking(tmp_path)
    assert f"port {port}" in str(caught.value) and "mlflow.json" in str(caught.value)
