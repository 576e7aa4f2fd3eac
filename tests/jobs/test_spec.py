"""The job loader: what it accepts, how it rewrites older forms, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner.errors import JobSpecError
from jobrunner.spec.expressions import Ref, modernize, references, render
from jobrunner.spec.job import JobSpec, parse_job


def parse(text: str, tmp_path: Path | None = None, **overrides: str) -> JobSpec:
    return parse_job(
        text,
        source="job.yml",
        base_dir=tmp_path or ".",
        overrides=overrides,
        check_paths=tmp_path is not None,
    )


def refusal(text: str, **overrides: str) -> dict[str, str]:
    """field -> message (with its fix) of every problem the loader finds."""
    with pytest.raises(JobSpecError) as caught:
        parse_job(text, source="job.yml", overrides=overrides, check_paths=False)
    assert all(p.file == "job.yml" for p in caught.value.problems)
    return {p.field: str(p) for p in caught.value.problems}


def test_a_full_job_keeps_azure_ml_names(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "data").mkdir()
    spec = parse(
        """
command: python train.py --data ${{inputs.data}} --lr ${{inputs.lr}} --out ${{outputs.model}}
code: src
environment: {image: "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime"}
environment_variables: {NCCL_DEBUG: INFO, SEED: 7, FAST: true}
inputs:
  data: {type: uri_folder, path: data, mode: download}
  remote: {type: uri_file, path: "azureml://datastores/blobs/paths/iris.csv"}
  lr: 0.1
outputs:
  model: {type: uri_folder, mode: upload}
resources: {instance_count: 2, shm_size: 8g}
distribution: {type: pytorch, process_count_per_instance: 4}
limits: {timeout: 3600}
experiment_name: exp
display_name: run
trainstack:
  preparation: {command: pip install -r requirements.txt}
  retry: {max_attempts: 3, no_retry_exit_codes: [2]}
""",
        tmp_path,
    )
    assert spec.code == str((tmp_path / "src").resolve())
    assert spec.data_inputs["data"].path == str((tmp_path / "data").resolve())
    assert spec.data_inputs["remote"].location.store == "blobs"
    assert spec.inputs["lr"] == 0.1
    assert spec.environment_variables == {"NCCL_DEBUG": "INFO", "SEED": "7", "FAST": "true"}
    assert spec.distribution_type == "pytorch"
    assert spec.instance_count == 2
    assert spec.limits.timeout == 3600
    assert spec.trainstack.retry.no_retry_exit_codes == (2,)
    assert spec.trainstack.preparation and spec.trainstack.preparation.command.startswith("pip")
    assert spec.notes == ()


def test_defaults_match_azure_ml() -> None:
    spec = parse("command: echo hi\noutputs: {out: }\n")
    assert spec.instance_count == 1
    assert spec.distribution_type == "none"
    assert spec.environment is None
    assert spec.outputs["out"].mode == "rw_mount"
    assert spec.trainstack.retry.max_attempts == 1


def test_older_forms_are_rewritten(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    spec = parse(
        """
command: python train.py --epochs {inputs.epochs} --out ${{outputs.o}}
code: {local_path: src}
compute: {target: azureml:gpu, instance_count: 2}
distribution: {type: PyTorch, process_count: 4}
inputs: {epochs: {type: integer, value: 3}}
outputs: {o: }
""",
        tmp_path,
    )
    assert spec.command == "python train.py --epochs ${{inputs.epochs}} --out ${{outputs.o}}"
    assert spec.code == str((tmp_path / "src").resolve())
    assert spec.instance_count == 2
    assert spec.distribution is not None and spec.distribution.process_count_per_instance == 2  # type: ignore[union-attr]
    assert spec.inputs["epochs"] == 3
    assert spec.notes == ("`compute` is not used on a pool",)


def test_uneven_total_process_count_is_refused() -> None:
    problems = refusal(
        "command: x\nresources: {instance_count: 2}\ndistribution: {type: mpi, process_count: 3}\n"
    )
    assert "process_count_per_instance" in problems["distribution.process_count"]


def test_overrides_set_inputs_variables_and_counts(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    text = """
command: python t.py ${{inputs.epochs}} ${{inputs.data}}
inputs:
  epochs: 1
  data: {type: uri_folder, path: "azureml://datastores/d/paths/x"}
"""
    spec = parse(
        text,
        tmp_path,
        **{
            "inputs.epochs": "3",
            "inputs.data": "other",
            "environment_variables.FLAG": "true",
            "resources.instance_count": "2",
            "distribution.type": "pytorch",
            "display_name": "123",
        },
    )
    assert spec.inputs["epochs"] == 3
    assert spec.data_inputs["data"].path == str((tmp_path / "other").resolve())
    assert spec.environment_variables == {"FLAG": "true"}
    assert spec.instance_count == 2 and spec.distribution_type == "pytorch"
    assert spec.display_name == "123"


def test_bad_overrides_name_the_key() -> None:
    problems = refusal("command: x\ninputs: {a: 1}\n", **{"inputs.a.b": "2"})
    assert "`inputs.a` is not a mapping" in problems["--set inputs.a.b"]
    assert (
        "did you mean `resources`" in refusal("command: x\n", **{"resorces.instance_count": "2"})["resorces"]
    )


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("command: x\nenvironment: azureml:AzureML-Minimal@1\n", "environment", "azureml:<name>@latest"),
        ("command: x\nenvironment: python:3.11\n", "environment", "environment: {image: python:3.11}"),
        ("command: x\nenvironment: {conda_file: c.yml, image: python}\n", "environment.conda_file", "conda"),
        ("command: x\ncode: azureml:my-code:1\n", "code", "local path"),
        ("command: x\ncode: git+https://github.com/o/r.git\n", "code", "is git code"),
        ("command: x\ndistribution: {type: ray}\n", "distribution.type", "not `ray`"),
        ("command: x\ndistribution: {type: pytoch}\n", "distribution.type", "did you mean `pytorch`"),
        (
            "command: x\nresources: {instance_count: 0}\n",
            "resources.instance_count",
            "greater than or equal to 1",
        ),
        (
            "command: x\ninputs: {d: {path: 'azureml:cifar@latest'}}\n",
            "inputs.d.path",
            "a registered Azure ML asset: give a datastore URI",
        ),
        (
            "command: x\ninputs: {d: {path: '/subscriptions/s/resourceGroups/g/providers/d/versions/1'}}",
            "inputs.d.path",
            "a registered Azure ML asset: give a datastore URI",
        ),
        ("command: x\ninputs: {d: {path: 's3://bucket/x'}}\n", "inputs.d.path", "s3://"),
        ("command: x\noutputs: {o: {path: './local'}}\n", "outputs.o.path", "azureml://datastores"),
        ("command: x\ntype: pipeline\n", "type", "not `pipeline` jobs"),
        ("command: echo ${{inputs.epoch}}\ninputs: {epochs: 1}\n", "command", "did you mean `inputs.epochs`"),
        ("command: echo ${{outputs.o}}\n", "command", "declare `outputs.o`"),
        ("command: echo ${{parent.inputs.x}}\n", "command", "only inputs and outputs"),
        ("command: echo ${{inputs.a}}\ninputs: {a: }\n", "inputs.a", "has no value"),
        ("command: x\nlimits: {timeout: -5}\n", "limits.timeout", "greater than or equal to 1"),
        (
            "command: x\ntrainstack: {retry: {max_attempt: 2}}\n",
            "trainstack.retry.max_attempt",
            "max_attempts",
        ),
        (
            "command: x\ntrainstack: {preparation: {command: 'cp ${{inputs.y}} .'}}\n",
            "trainstack.preparation.command",
            "declare `inputs.y`",
        ),
        ("command: x\ninputs: {a: [1, 2]}\n", "inputs.a", "literal"),
        ("comand: x\n", "comand", "did you mean `command`"),
    ],
)
def test_refusals_name_field_and_fix(text: str, field: str, words: str) -> None:
    problems = refusal(text)
    assert field in problems, problems
    assert words in problems[field]


def test_all_problems_are_reported_at_once() -> None:
    problems = refusal("command: x\nenvironment: azureml:e@1\ndistribution: {type: ray}\n")
    assert set(problems) == {"environment", "distribution.type"}


def test_git_code_is_reported_once(tmp_path: Path) -> None:
    with pytest.raises(JobSpecError) as caught:
        parse("command: x\ncode: git+https://github.com/o/r.git@main\n", tmp_path)
    (problem,) = caught.value.problems
    assert problem.field == "code" and "git code" in problem.message


def test_path_checks_report_with_the_schema_problems(tmp_path: Path) -> None:
    with pytest.raises(JobSpecError) as caught:
        parse(
            "command: x\ncode: src\nresources: {instance_count: 0}\n"
            "inputs: {d: {path: data}, r: {path: 'azureml:d@latest'}}\n",
            tmp_path,
        )
    fields = [p.field for p in caught.value.problems]
    assert sorted(fields) == ["code", "inputs.d.path", "inputs.r.path", "resources.instance_count"]


def test_missing_local_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(JobSpecError, match=r"inputs.d.path: uri_file `nope.csv` not found"):
        parse("command: cat ${{inputs.d}}\ninputs: {d: {type: uri_file, path: nope.csv}}\n", tmp_path)


def test_ignored_fields_are_noted() -> None:
    spec = parse(
        "command: x\ncompute: azureml:gpu\nidentity: {type: managed}\n"
        "resources: {instance_type: Standard_NC6}\n"
        "outputs: {m: {name: my-model, version: 2}}\nservices: {ssh: {type: ssh}}\n"
    )
    assert len(spec.notes) == 5
    assert any("instance_type" in n for n in spec.notes)


def test_optional_input_syntax() -> None:
    spec = parse("command: run $[[--opt ${{inputs.opt}}]] --x ${{inputs.x}}\ninputs: {x: 1, opt: }\n")
    assert spec.inputs["opt"] is None
    values = {"x": "1", "opt": None}
    assert render(spec.command, lambda r: values[r.name]) == "run  --x 1"
    values["opt"] = "fast"
    assert render(spec.command, lambda r: values[r.name]) == "run --opt fast --x 1"


def test_expressions() -> None:
    assert (
        modernize("a {inputs.x} ${{inputs.y}} {outputs.z}") == "a ${{inputs.x}} ${{inputs.y}} ${{outputs.z}}"
    )
    assert list(references("${{ inputs.a }} $[[${{inputs.b}}]]")) == [
        Ref("inputs", "a", False),
        Ref("inputs", "b", True),
    ]
    with pytest.raises(KeyError):
        render("${{inputs.a}}", lambda r: None)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "command: [unclosed\n", "42\n", "? [a]\n: b\n"])
def test_malformed_text_is_a_job_spec_error(text: str) -> None:
    with pytest.raises(JobSpecError):
        parse_job(text, source="job.yml", check_paths=False)


def test_a_quota_smaller_than_the_job_is_refused_and_a_fitting_one_is_read() -> None:
    problems = refusal("command: x\nresources: {instance_count: 4}\ntrainstack: {quota: {user_nodes: 2}}\n")
    assert "`trainstack.quota.user_nodes` is 2, fewer than the job's 4 nodes" in problems["trainstack"]
    spec = parse_job(
        "command: x\ntrainstack: {quota: {experiment_nodes: 8, user: alice, user_nodes: 4}}\n",
        source="job.yml", check_paths=False,
    )  # fmt: skip
    assert (spec.trainstack.quota.experiment_nodes, spec.trainstack.quota.user) == (8, "alice")
    assert "trainstack.quota.user" in refusal("command: x\ntrainstack: {quota: {user: 'a b'}}\n")
