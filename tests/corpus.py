"""Where the real-world configuration corpus lives: `shared/corpus` beside the checkout, or
`$TRAINSTACK_CORPUS`. Tests parametrize over every file in it, so a missing corpus is an error,
not a silent skip."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("TRAINSTACK_CORPUS") or REPO.parent / "shared" / "corpus")
if not (CORPUS / "aml-cli-v2").is_dir() or not (CORPUS / "batchai").is_dir():
    raise RuntimeError(
        f"the configuration corpus is not at {CORPUS}: put shared/corpus beside the checkout "
        "or set TRAINSTACK_CORPUS"
    )
AML_CLI_V2 = CORPUS / "aml-cli-v2"
BATCHAI = CORPUS / "batchai"
