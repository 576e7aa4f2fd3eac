"""What a job's files can do to staging, bounded: ignore files read as git reads them, links
that leave the code folder refused at submit with the path, a datastore holding both `a` and
`a/b`, and http(s) inputs from a server that stalls, fails or sends too much."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobrunner.errors import ConfigError, LaunchError
from jobrunner.node.staging import HttpLimits, code_files, download_tree, download_url, pack_code, unpack_code
from jobrunner.store.client import Store


def write(root: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)


def test_ignore_file_negation_folder_rules_and_double_star(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(
        src,
        "train.py",
        "a.log",
        "keep.log",
        "build",
        "out/build/x.o",
        "a/b",
        "a/x/y/b",
        "a/x/c",
        "sub/top.txt",
    )
    write(src, "top.txt")
    (src / ".gitignore").write_text("*.log\n!keep.log\nbuild/\na/**/b\n/top.txt\n")
    assert sorted(p.as_posix() for p in code_files(src)) == [
        ".gitignore",
        "a/x/c",
        "build",  # a file: `build/` names folders only
        "keep.log",
        "sub/top.txt",
        "train.py",
    ]


def test_amlignore_wins_over_gitignore(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, "train.py", "data.csv", "notes.md")
    (src / ".gitignore").write_text("*.md\n")
    (src / ".amlignore").write_text("*.csv\n")
    assert sorted(p.as_posix() for p in code_files(src)) == [
        ".amlignore",
        ".gitignore",
        "notes.md",
        "train.py",
    ]


@pytest.mark.parametrize("target", ["/mnt/datasets", "../elsewhere", "/etc/passwd"])
def test_link_out_of_the_code_folder_is_refused_with_its_path(tmp_path: Path, target: str) -> None:
    src = tmp_path / "src"
    write(src, "train.py")
    os.symlink(target, src / "data")
    with pytest.raises(ConfigError) as caught:
        pack_code(src)
    assert f"{src / 'data'} is a link to {target}" in str(caught.value)
    assert "inputs" in str(caught.value)  # the fix: declare it as an input


def test_link_inside_the_code_folder_is_packed_as_a_link(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, "pkg/model.py", "train.py")
    os.symlink("pkg", src / "lib")
    os.symlink("train.py", src / "main.py")
    dest = tmp_path / "dest"
    unpack_code(pack_code(src), dest)
    assert os.readlink(dest / "lib") == "pkg" and (dest / "lib" / "model.py").read_text() == "pkg/model.py"
    assert os.readlink(dest / "main.py") == "train.py"


def test_snapshot_with_an_absolute_link_made_elsewhere_is_a_job_error_on_the_node(tmp_path: Path) -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        link = tarfile.TarInfo("data")
        link.type, link.linkname = tarfile.SYMTYPE, "/mnt/datasets"
        tar.addfile(link)
    with pytest.raises(ConfigError, match="code: the snapshot cannot be unpacked"):
        unpack_code(buf.getvalue(), tmp_path / "dest")
    with pytest.raises(ConfigError, match="not a gzip|cannot be unpacked"):
        unpack_code(b"not a tar", tmp_path / "dest2")


def test_a_blob_that_is_also_a_folder_is_refused_by_name(azurite: str, tmp_path: Path) -> None:
    store = Store.connect(azurite)
    store.put("clash", "set/a", b"file a")
    store.put("clash", "set/a/b", b"file under a")
    with pytest.raises(ConfigError) as caught:
        download_tree(store, "clash", "set", tmp_path / "dest")
    assert "clash/set/a is a blob and also a folder" in str(caught.value)


def test_http_input_that_stalls_fails_with_the_url_and_no_query(
    misbehaving_http: str, tmp_path: Path
) -> None:
    # The server holds the body for a minute: only a read timeout of its own ends this sooner
    # with a stall (the connect timeout, 120 s, would see the connection close instead).
    limits = HttpLimits(connect_s=120, read_s=0.5, max_bytes=10**6)
    with pytest.raises(LaunchError) as caught:
        download_url(
            f"{misbehaving_http}/stall/data.csv?sig=SECRET", tmp_path, field="inputs.d", limits=limits
        )
    message = str(caught.value)
    assert message.startswith(f"inputs.d: cannot download {misbehaving_http}/stall/data.csv: ")
    assert "SECRET" not in message and "stall of 0.5 s" in message
    assert not (tmp_path / "data.csv").exists()


def test_http_input_over_the_size_cap_or_missing_fails_with_the_cause(
    misbehaving_http: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"inputs.d: .*/big/x.bin is larger than 4096 bytes"):
        download_url(
            f"{misbehaving_http}/big/x.bin?k=v", tmp_path, field="inputs.d", limits=HttpLimits(max_bytes=4096)
        )
    assert not (tmp_path / "x.bin").exists()
    with pytest.raises(ConfigError, match=r"cannot download .*/gone/y: HTTP Error 404"):
        download_url(f"{misbehaving_http}/gone/y", tmp_path, field="inputs.d")
    with pytest.raises(LaunchError, match=r"inputs.d: .*/short/z ended after 10 of 100 bytes"):
        download_url(f"{misbehaving_http}/short/z", tmp_path, field="inputs.d")
    assert list(tmp_path.iterdir()) == []


def test_a_real_agent_fails_an_attempt_whose_http_input_stalls_and_serves_the_next_job(
    azurite: str, misbehaving_http: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stall limit as the agent applies it (60 s on a pool; 1 s here, so the test is short)."""
    import jobrunner.node.staging as staging
    from jobrunner.client import Client
    from jobrunner.node.agent import AgentSettings
    from jobrunner.store.pool_config import PoolConfig, write_pool_config
    from tests.runner.agents import run_to_end

    monkeypatch.setattr(staging, "HttpLimits", lambda: HttpLimits(connect_s=5, read_s=1))
    store = Store.connect(azurite)
    write_pool_config(store, PoolConfig(name="stalls", max_nodes=1))
    client = Client(store, pool="stalls")
    stalled = tmp_path / "stalled.yml"
    url = f"{misbehaving_http}/stall/d.csv?sig=SECRET"
    stalled.write_text(f"command: cat ${{{{inputs.d}}}}\ninputs:\n  d: {{type: uri_file, path: '{url}'}}\n")
    after = tmp_path / "after.yml"
    after.write_text("command: echo next\n")
    settings = AgentSettings(pool="stalls", name="stalls-0", work_dir=tmp_path / "agent")
    first = client.submit(stalled)
    run_to_end(store, settings, first.id)
    failed = client.status(first.id)
    assert failed.state.value == "failed" and failed.failure_kind is not None, failed
    # the store's fault, not the job's: requeued up to the free cap, then failed with the cause
    assert failed.failure_kind.value == "infrastructure" and "a stall of 1 s" in (failed.reason or "")
    assert "SECRET" not in (failed.reason or "") and f"{misbehaving_http}/stall/d.csv" in (
        failed.reason or ""
    )
    second = client.submit(after)
    run_to_end(store, settings, second.id)
    assert client.status(second.id).state.value == "succeeded"
