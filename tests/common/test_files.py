"""Every loader reads its file through `read_text`: a missing or unreadable file is one
problem naming the file, raised as the loader's own error type."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner.errors import ConfigError, JobSpecError
from jobrunner.files import read_text
from jobrunner.spec.job import load_job
from trainstack.batchai.schema import read_json


def test_a_missing_file_names_itself_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        read_text(tmp_path / "absent.yaml", what="agent config")
    (problem,) = caught.value.problems
    assert problem.file == str(tmp_path / "absent.yaml") and problem.message == "agent config not found"
    assert problem.fix == "check the path"


def test_a_folder_or_bad_encoding_is_unreadable_in_the_callers_error_type(tmp_path: Path) -> None:
    with pytest.raises(JobSpecError, match="cannot read job file"):
        read_text(tmp_path, what="job file", error=JobSpecError)
    latin = tmp_path / "latin.yml"
    latin.write_bytes("command: echo caf\xe9\n".encode("latin-1"))
    with pytest.raises(JobSpecError, match="cannot read job file"):
        load_job(latin)


def test_a_byte_order_mark_is_read_where_the_loader_allows_it(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_bytes(b'\xef\xbb\xbf{"properties": {}}')
    assert read_json(path) == {"properties": {}}
    assert read_text(path).startswith("\ufeff")
