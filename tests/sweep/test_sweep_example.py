"""The sweep example: its file loads, and a trial's command job trains for real."""

from __future__ import annotations

import re
from pathlib import Path

from jobrunner.sweep.load import load_sweep
from tests.jobs.planning import LocalGang

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sweep"


def test_a_trial_of_the_example_trains_and_logs_its_loss(tmp_path: Path) -> None:
    sweep = load_sweep(EXAMPLE / "sweep.yml")
    job = sweep.trial_job({"lr": 0.0005, "optimizer": "sgd"})  # slow enough to see it learn
    gang = LocalGang(job, EXAMPLE / "src", tmp_path)
    (result,) = gang.run().values()
    assert result.succeeded, gang.output()
    losses = [
        float(m.group(1)) for _, _, line in gang.lines if (m := re.match(r"epoch \d+ loss (\S+)", line))
    ]
    assert len(losses) == 20
    assert losses[-1] < losses[0]
