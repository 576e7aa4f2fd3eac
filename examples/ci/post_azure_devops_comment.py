"""Post a trainstack review as an Azure Repos pull request comment, or update the comment
posted before for the same stack (found by the hidden marker on the body's first line).

    python3 examples/ci/post_azure_devops_comment.py review/prod.md

Reads COLLECTION_URI, PROJECT, REPOSITORY_ID, PR_NUMBER and SYSTEM_ACCESSTOKEN (the
pipeline's own token: no Azure credentials) from the environment. Standard library only.
Exits 2 on a bad argument, 1 when Azure DevOps refuses a request.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

API_VERSION = "7.1"


def _call(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {os.environ['SYSTEM_ACCESSTOKEN']}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: post_azure_devops_comment.py BODY_FILE", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        body = f.read()
    marker = body.split("\n", 1)[0]
    if not (marker.startswith("<!-- trainstack-review:") and marker.endswith(" -->")):
        print(f"{argv[0]} does not start with a trainstack review marker (--format github)", file=sys.stderr)
        return 2
    pr = os.environ["PR_NUMBER"]
    if not pr.isdigit():
        print(f"not a pull request id: {pr!r}", file=sys.stderr)
        return 2
    base = (
        f"{os.environ['COLLECTION_URI'].rstrip('/')}/{urllib.parse.quote(os.environ['PROJECT'])}"
        f"/_apis/git/repositories/{os.environ['REPOSITORY_ID']}/pullRequests/{pr}/threads"
    )
    query = f"?api-version={API_VERSION}"
    try:
        threads = _call("GET", base + query)["value"]
        for thread in threads:
            comments = thread.get("comments") or []
            if comments and (comments[0].get("content") or "").split("\n", 1)[0] == marker:
                url = f"{base}/{thread['id']}/comments/{comments[0]['id']}{query}"
                _call("PATCH", url, {"content": body})
                print(f"updated thread {thread['id']} on pull request {pr}", file=sys.stderr)
                return 0
        thread = {"comments": [{"parentCommentId": 0, "content": body, "commentType": 1}], "status": 1}
        created = _call("POST", base + query, thread)
        print(f"posted thread {created['id']} on pull request {pr}", file=sys.stderr)
    except urllib.error.HTTPError as err:
        print(
            f"Azure DevOps refused {err.url}: {err.code} {err.read().decode(errors='replace')}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
