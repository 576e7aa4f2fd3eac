"""The CI examples (examples/ci/) run for real: their steps' commands, as the workflow files
hold them, on a temporary git repository with two commits (the pull request's branch and
`origin/main`), with `trainstack` from this checkout. Posting goes to fakes of the services
that CI talks to: a `gh` on PATH that keeps comments in a file, and an Azure DevOps threads
endpoint on loopback. Steps that only install or hand files between jobs are skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.review.gitrepo import ROOT, change_prod, git, project_repo
from trainstack.review_text import GITHUB_COMMENT_LIMIT

CI = ROOT / "examples" / "ci"
SKIPPED = {"Install trainstack"}  # the tests run this checkout's trainstack
BIN = Path(sys.executable).parent
PATHS = ["stacks/**", "components/**", "__main__.py"]

FAKE_GH = """\
#!{python}
# A stand-in for `gh api` over a file of comments: GET pages of two, POST, PATCH.
import json, os, sys
assert os.environ.get("GH_TOKEN"), "GH_TOKEN is not set"
args, method, fields, path = sys.argv[2:], "GET", {{}}, None
assert sys.argv[1] == "api", sys.argv
while args:
    arg = args.pop(0)
    if arg in ("--method", "-X"):
        method = args.pop(0)
    elif arg == "-F":
        key, value = args.pop(0).split("=", 1)
        fields[key] = open(value[1:]).read() if value.startswith("@") else value
    elif arg != "--paginate":
        path = arg
state = json.load(open(os.environ["FAKE_GH_STATE"]))
state["calls"].append([method, path])
parts = path.split("/")
if method == "GET":
    pr = int(parts[4])
    mine = [c for c in state["comments"] if c["issue"] == pr]
    sys.stdout.write("".join(json.dumps(mine[i:i + 2]) for i in range(0, len(mine), 2)) or "[]")
elif method == "POST":
    new = {{"id": 100 + len(state["comments"]), "issue": int(parts[4]), "body": fields["body"]}}
    state["comments"].append(new)
elif method == "PATCH":
    [comment] = [c for c in state["comments"] if c["id"] == int(parts[5])]
    comment["body"] = fields["body"]
json.dump(state, open(os.environ["FAKE_GH_STATE"], "w"))
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """main: the project with the CI examples; the checked-out branch: the prod change."""
    path = project_repo(tmp_path_factory.mktemp("ci") / "repo")
    shutil.copytree(CI, path / "examples" / "ci")
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", "CI examples")
    git(path, "update-ref", "refs/remotes/origin/main", "main")  # as a full-history checkout has it
    git(path, "checkout", "--quiet", "-b", "feature")
    change_prod(path)
    return path


def _expand(value: str, known: Mapping[str, str]) -> str:
    """`${{ github.base_ref }}` / `$(System.AccessToken)` replaced; an unknown one fails."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in known, f"the workflow uses {match.group(0)}: give the test a value for it"
        return known[name]

    return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}|\$\(([\w.]+)\)", one, str(value))


def _run_step(script: str, repo: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PATH": f"{env.get('PATH_FIRST', BIN)}:{BIN}:{os.environ['PATH']}", **env}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", script],
        cwd=repo,
        env=full,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _steps(steps: list[dict[str, Any]], key: str) -> Iterator[dict[str, Any]]:
    for step in steps:
        if key in step and step.get("name", step.get("displayName")) not in SKIPPED:
            yield step


def _check_review_bodies(out: Path) -> None:
    prod = (out / "prod.md").read_text()
    assert prod.startswith("<!-- trainstack-review:prod -->\n") and len(prod) <= GITHUB_COMMENT_LIMIT
    assert "against `origin/main`" in prod
    assert "| **replace** | `a100-lowpri-compute` |" in prod and "`properties.properties.vmSize`" in prod
    assert "| create | `h100-burst-compute` |" in prod and "+ 16 × Standard_ND96isr_H100_v5 at max:" in prod
    assert "`storage-no-public-blob-access`" in prod.split("introduced by this change")[-1]
    assert (out / "dev.md").read_text().startswith("<!-- trainstack-review:dev -->\n")
    assert (out / "status").read_text().strip() == "1"  # prod breaks a mandatory policy


def test_github_workflows_review_and_post_one_comment_per_stack(repo: Path, tmp_path: Path) -> None:
    review = yaml.safe_load((CI / "github" / "trainstack-review.yml").read_text())
    assert review[True]["pull_request"]["paths"] == PATHS  # PyYAML reads `on` as True
    assert "secrets." not in (CI / "github" / "trainstack-review.yml").read_text()
    assert review["permissions"] == {"contents": "read"}
    [job] = review["jobs"].values()
    known = {"github.base_ref": "main", "github.event.pull_request.number": "42"}
    env = {k: _expand(v, known) for k, v in job["env"].items()}
    results = {s["name"]: _run_step(s["run"], repo, env) for s in _steps(job["steps"], "run")}
    assert list(results) == ["Validate the stacks", "Review the change", "Fail on a broken mandatory policy"]
    assert results["Validate the stacks"].returncode == 0, results["Validate the stacks"].stdout
    assert results["Review the change"].returncode == 0, results["Review the change"].stderr
    assert results["Fail on a broken mandatory policy"].returncode == 1
    _check_review_bodies(repo / "review")
    assert (repo / "review" / "pr-number").read_text().strip() == "42"

    comment = yaml.safe_load((CI / "github" / "trainstack-review-comment.yml").read_text())
    assert comment[True]["workflow_run"]["workflows"] == [review["name"]]
    [job] = comment["jobs"].values()
    [post] = list(_steps(job["steps"], "run"))
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "gh").write_text(FAKE_GH.format(python=sys.executable))
    (fake / "gh").chmod(0o755)
    state = tmp_path / "gh-state.json"
    others = [{"id": i, "issue": 42, "body": f"a person's comment {i}"} for i in range(1, 4)]
    state.write_text(json.dumps({"comments": others, "calls": []}))
    env = {
        **{
            k: _expand(v, {"github.token": "token", "github.repository": "octo/ml"})
            for k, v in job["env"].items()
        },
        "FAKE_GH_STATE": str(state),
        "PATH_FIRST": str(fake),
    }
    for _ in range(2):  # a second push updates the comments instead of adding more
        done = _run_step(post["run"], repo, env)
        assert done.returncode == 0, done.stderr
    comments = json.loads(state.read_text())["comments"]
    assert comments[:3] == others
    bodies = {c["body"].split("\n", 1)[0]: c["body"] for c in comments[3:]}
    assert len(comments) == 5 and bodies == {
        "<!-- trainstack-review:dev -->": (repo / "review" / "dev.md").read_text(),
        "<!-- trainstack-review:prod -->": (repo / "review" / "prod.md").read_text(),
    }
    calls = json.loads(state.read_text())["calls"]
    assert [m for m, _ in calls].count("PATCH") == 2 and [m for m, _ in calls].count("POST") == 2
    # The pull request number comes from the artifact: anything but a number is refused.
    (repo / "review" / "pr-number").write_text("42; rm -rf /\n")
    assert _run_step(post["run"], repo, env).returncode == 2


class _Threads(BaseHTTPRequestHandler):
    """Azure DevOps' pull request threads API, as far as the poster uses it."""

    threads: list[dict[str, Any]]
    seen: list[tuple[str, str]]
    prefix = "/org/ml%20platform/_apis/git/repositories/repo-id/pullRequests/7/threads"

    def _reply(self, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _checked(self) -> str:
        assert self.headers["Authorization"] == "Bearer pipeline-token"
        path, _, query = self.path.partition("?")
        assert query == "api-version=7.1" and path.startswith(self.prefix), self.path
        self.seen.append((self.command, path))
        return path[len(self.prefix) :]

    def _body(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        self._checked()
        self._reply({"value": self.threads, "count": len(self.threads)})

    def do_POST(self) -> None:  # noqa: N802
        self._checked()
        thread = self._body()
        thread["id"] = len(self.threads) + 1
        thread["comments"][0]["id"] = 1
        self.threads.append(thread)
        self._reply(thread)

    def do_PATCH(self) -> None:  # noqa: N802
        _, thread_id, _, comment_id = self._checked().split("/")
        [thread] = [t for t in self.threads if t["id"] == int(thread_id)]
        [comment] = [c for c in thread["comments"] if c["id"] == int(comment_id)]
        comment["content"] = self._body()["content"]
        self._reply(comment)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def azure_devops() -> Iterator[tuple[str, type[_Threads]]]:
    handler = type("Threads", (_Threads,), {"threads": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/org/", handler
    finally:
        server.shutdown()
        server.server_close()


def test_azure_pipeline_reviews_and_posts_one_thread_per_stack(
    repo: Path, azure_devops: tuple[str, type[_Threads]]
) -> None:
    url, threads = azure_devops
    pipeline = yaml.safe_load((CI / "azure-pipelines.yml").read_text())
    assert pipeline["pr"]["paths"]["include"] == ["stacks/*", "components/*", "__main__.py"]
    assert pipeline["trigger"] == "none"
    assert [s["fetchDepth"] for s in pipeline["steps"] if "checkout" in s] == [0]
    known = {
        "System.PullRequest.TargetBranchName": "main",
        "System.PullRequest.PullRequestId": "7",
        "System.AccessToken": "pipeline-token",
        "System.CollectionUri": url,
        "System.TeamProject": "ml platform",
        "Build.Repository.ID": "repo-id",
    }
    shutil.rmtree(repo / "review", ignore_errors=True)
    variables = {k: str(v) for k, v in pipeline["variables"].items()}
    codes = {}
    for step in _steps(pipeline["steps"], "script"):
        env = {**variables, **{k: _expand(v, known) for k, v in step.get("env", {}).items()}}
        done = _run_step(step["script"], repo, env)
        codes[step["displayName"]] = done.returncode
        if step["displayName"] == "Post or update the review comments":
            assert done.returncode == 0, done.stderr
            assert _run_step(step["script"], repo, env).returncode == 0  # a later push: updates
    assert codes == {
        "Validate the stacks": 0,
        "Review the change": 0,
        "Post or update the review comments": 0,
        "Fail on a broken mandatory policy": 1,
    }
    _check_review_bodies(repo / "review")
    assert len(threads.threads) == 2
    posted = {
        t["comments"][0]["content"].split("\n", 1)[0]: t["comments"][0]["content"] for t in threads.threads
    }
    assert posted["<!-- trainstack-review:prod -->"] == (repo / "review" / "prod.md").read_text()
    assert [m for m, _ in threads.seen].count("PATCH") == 2
