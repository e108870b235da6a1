"""A POST /jobs body into a JobSpec: the CLI's messages, unknown fields by name."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from kbatch_dask.errors import BadInput
from kbatch_dask.service import submission


def body(**fields: object) -> bytes:
    data = {"script": {"name": "/home/a/train.py", "content": base64.b64encode(b"print(1)\n").decode()}, **fields}
    return json.dumps(data).encode()


def test_a_body_becomes_the_spec_of_its_user_in_its_directory(tmp_path: Path) -> None:
    parsed = submission.parse(body(spec={"dask-workers": "2:4", "chdir": "/home/a", "cpus": 2}, args=["-v"]))
    spec = parsed.spec("alice", str(tmp_path), {})
    assert (spec.user, spec.workdir, str(spec.workers), spec.cpus, spec.args) == ("alice", "/home/a", "2:4", 2, ("-v",))
    assert spec.output == "kbatch-%j.out" and (tmp_path / "train.py").read_bytes() == b"print(1)\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (body(spec={"user": "bob"}), "unknown field spec.'user'"),
        (body(spec={"backend": "local"}), "unknown field spec.'backend'"),
        (body(pod={}), "unknown field 'pod'"),
        (body(spec={"gpus": True}), "spec.gpus: expected a string or a number, got a boolean"),
        (body(environment={"A": 1}), "environment.A: expected a string"),
        (body(args="x"), "args: expected a list of strings"),
        (json.dumps({"script": {"name": "..", "content": ""}}).encode(), "script.name '..': expected a file name"),
    ],
)
def test_bad_fields_are_refused_by_name(data: bytes, message: str) -> None:
    with pytest.raises(BadInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        submission.parse(data)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"memory": "4GG", "chdir": "/h"}, "--memory '4GG': expected a size like"),
        ({"chdir": "home"}, "--chdir 'home': expected an absolute path"),
        ({"output": "~/x.out", "chdir": "/h"}, "--output '~/x.out': expected an absolute path"),
    ],
)
def test_values_are_validated_with_the_cli_messages(tmp_path: Path, spec: dict[str, str], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        submission.parse(body(spec=spec)).spec("alice", str(tmp_path), {})


def test_hub_tokens_and_the_driver_credential_do_not_pass_the_deny_list() -> None:
    env = {
        "JUPYTERHUB_API_TOKEN": "job",
        "KBATCH_DASK_HUB_TOKEN_ID": "7",
        "KBATCH_DASK_JOB_CREDENTIAL": "forged",
        "JPY_API_TOKEN": "x",
        "A": "1",
    }
    assert submission.parse(body(environment=env)).environment == {"A": "1"}
