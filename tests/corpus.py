"""Where the real-world configuration corpus lives, and the project's own files of the same kinds.

The corpus (`shared/corpus` beside the checkout, or `$TRAINSTACK_CORPUS`) holds real files
written outside the project. A user's clone has none: tests that need it skip with `REASON`,
while the same behaviours run over the project's fixtures in `tests/fixtures`, written from the
schemas. CI sets `TRAINSTACK_CI=1`, which makes a missing corpus a collection error,
so CI never skips the corpus tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("TRAINSTACK_CORPUS") or REPO.parent / "shared" / "corpus")
AML_CLI_V2 = CORPUS / "aml-cli-v2"
BATCHAI = CORPUS / "batchai"
AML_SWEEPS = CORPUS / "aml-cli-v2-sweeps"
PRESENT = AML_CLI_V2.is_dir() and BATCHAI.is_dir()
REASON = (
    f"no configuration corpus at {CORPUS} (put shared/corpus beside the checkout or set TRAINSTACK_CORPUS)"
)
if not PRESENT and os.environ.get("TRAINSTACK_CI") == "1":
    raise RuntimeError(f"TRAINSTACK_CI=1 and {REASON}")

# For a test that reads a named corpus file, or all of them.
needs_corpus = pytest.mark.skipif(not PRESENT, reason=REASON)

FIXTURES = REPO / "tests" / "fixtures"
OWN_AML_CLI_V2 = FIXTURES / "aml-cli-v2"
OWN_BATCHAI = FIXTURES / "batchai"


def corpus_files(folder: Path, *patterns: str) -> list[Path]:
    """The corpus files in `folder` matching `patterns`, sorted; none when the corpus is missing."""
    return sorted(p for pattern in patterns for p in folder.glob(pattern)) if PRESENT else []


def batchai_files(kind: str) -> list[Path]:
    """Batch AI `kind` ("jobs" or "clusters") files: the project's own, then the corpus's."""
    return sorted((OWN_BATCHAI / kind).glob("*.json")) + corpus_files(BATCHAI / kind, "*.json")
