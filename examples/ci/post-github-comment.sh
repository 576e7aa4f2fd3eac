#!/usr/bin/env bash
# Post a trainstack review as a pull request comment, or update the comment posted before
# for the same stack (found by the hidden marker on the body's first line):
#   examples/ci/post-github-comment.sh OWNER/REPO PR_NUMBER BODY_FILE
# Needs the GitHub CLI (`gh`) with GH_TOKEN allowed to write pull request comments.
set -euo pipefail
repo=$1 pr=$2 body=$3
if ! [[ "$pr" =~ ^[0-9]+$ ]]; then
  echo "not a pull request number: '$pr'" >&2
  exit 2
fi
marker=$(head -n 1 "$body")
if ! [[ "$marker" == "<!-- trainstack-review:"*" -->" ]]; then
  echo "$body does not start with a trainstack review marker (made by --format github)" >&2
  exit 2
fi
# `gh api --paginate` prints one JSON array per page; take the first comment with the marker.
id=$(gh api "repos/$repo/issues/$pr/comments" --paginate | python3 -c '
import json, sys
marker, text, decoder, at = sys.argv[1], sys.stdin.read(), json.JSONDecoder(), 0
while at < len(text):
    if text[at].isspace():
        at += 1
        continue
    page, at = decoder.raw_decode(text, at)
    for comment in page:
        if comment["body"].split("\n", 1)[0] == marker:
            print(comment["id"])
            sys.exit(0)
' "$marker")
if [ -n "$id" ]; then
  gh api --method PATCH "repos/$repo/issues/comments/$id" -F "body=@$body" > /dev/null
  echo "updated comment $id on #$pr" >&2
else
  gh api --method POST "repos/$repo/issues/$pr/comments" -F "body=@$body" > /dev/null
  echo "posted a comment on #$pr" >&2
fi
