"""A submission says the run's retry policy, so that settling an attempt reads no spec; a
message from an older client, without it, is settled from the spec as before."""

from __future__ import annotations

import pytest

from jobrunner.api import FailureKind, JobState
from jobrunner.scheduler.judge import RunJudge
from jobrunner.scheduler.protocol import RunDoc, parse_submission, submission_body
from jobrunner.store.client import RUNS, Store
from jobrunner.store.status import NodeStatus, RunStatus, create_status, read_status, utc_now


def test_the_retry_policy_goes_through_the_message_and_the_runs_document() -> None:
    doc = RunDoc("run-retry-1", 2, 60.0, retry=(3, (2, 137)))
    parsed = parse_submission(submission_body(doc))
    assert isinstance(parsed, RunDoc) and parsed.retry == (3, (2, 137))
    assert RunDoc.decode(parsed.encode()) == parsed
    older = {k: v for k, v in submission_body(doc).items() if k != "retry"}
    taken = parse_submission(older)
    assert isinstance(taken, RunDoc) and taken.retry is None


@pytest.mark.parametrize(
    "retry",
    [{"max_attempts": 0}, {"max_attempts": True}, {"max_attempts": 2, "no_retry_exit_codes": "1"},
     {"max_attempts": 2, "no_retry_exit_codes": [1.5]}, [2, []]],
)  # fmt: skip
def test_a_retry_policy_out_of_range_refuses_the_message(retry: object) -> None:
    body = {**submission_body(RunDoc("run-retry-2", 1, None)), "retry": retry}
    refused = parse_submission(body)
    assert isinstance(refused, str) and refused.startswith("field `retry`")


def _running(store: Store, run: str) -> RunStatus:
    now = utc_now()
    status = RunStatus(id=run, experiment="e", pool="p", submitted_at=now, updated_at=now)
    status = status.moved_to(JobState.RUNNING, nodes=(NodeStatus(name="vm-0", rank=0),))
    create_status(store, status)
    done = NodeStatus(name="vm-0", rank=0, exit_code=3, failure_kind=FailureKind.USER, finished_at=utc_now())
    store.put(RUNS, status.ref.status_blob, status.with_node(done).model_dump_json().encode())
    return status


def test_settling_uses_the_submitted_policy_and_reads_no_spec(azurite: str) -> None:
    store = Store.connect(azurite)
    judge = RunJudge(store, "p")
    status = _running(store, "run-retry-3")  # no spec.json in the store at all
    doc = RunDoc(status.id, 1, None, state="active", owners=(("vm-0", "1"),), experiment="e", retry=(2, ()))
    assert judge(doc, "fail", {"vm-0": "fail"}) == "retry"
    after, _ = read_status(store, status.ref)
    assert after.state is JobState.QUEUED and after.attempt == 2 and after.user_failures == 1
    older = RunDoc(after.id, 1, None, attempt=2, state="active", owners=(("vm-0", "1"),), experiment="e")
    assert judge(older, "fail", {"vm-0": "fail"}) == "fail", "without a policy it reads the spec: missing"
