"""--mail-type and --mail-user as the spec takes them (kbatch_dask/spec/mail.py);
the bad values' one-line errors through the CLI are in tests/e2e/test_bad_input.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbatch_dask.errors import BadInput
from kbatch_dask.spec import JobSpec, build_spec
from kbatch_dask.spec.mail import check_address, parse_mail_type


@pytest.mark.parametrize(
    ("text", "asked"),
    [
        ("END", ("END",)),
        ("fail,end", ("END", "FAIL")),
        (" BEGIN , END ", ("BEGIN", "END")),
        ("ALL", ("BEGIN", "END", "FAIL")),
        ("END,ALL", ("BEGIN", "END", "FAIL")),
        ("NONE", ()),
    ],
)
def test_mail_types_are_slurms(text: str, asked: tuple[str, ...]) -> None:
    assert parse_mail_type(text) == asked


@pytest.mark.parametrize("text", ["", "END,", "BEGN", "REQUEUE", "NONE,END", "END FAIL"])
def test_a_bad_mail_type_says_what_is_allowed(text: str) -> None:
    with pytest.raises(BadInput, match=r"^--mail-type .*: (expected BEGIN, END, FAIL, ALL or NONE|NONE goes alone)"):
        parse_mail_type(text)


@pytest.mark.parametrize("text", ["alice", "a b@example.org", "a@b.org, c@d.org", "Alice <a@b.org>", "a@", "@b.org"])
def test_a_mail_user_is_one_plain_address(text: str) -> None:
    with pytest.raises(BadInput, match=r"^--mail-user .*: expected one address like alice@example.org$"):
        check_address(text)


def test_the_options_reach_the_spec_from_every_layer_and_survive_its_json(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("#KBATCH --mail-type end\nprint(1)\n")
    spec = build_spec(str(script), environ={"KBATCH_MAIL_USER": "alice@lab.org"})
    assert (spec.mail_type, spec.mail_user) == (("END",), "alice@lab.org")
    overridden = build_spec(str(script), options={"mail_type": "ALL"}, environ={})
    assert overridden.mail_type == ("BEGIN", "END", "FAIL") and overridden.mail_user is None
    assert JobSpec.from_dict(spec.to_dict()) == spec
    assert build_spec(str(script), options={"mail_type": "NONE"}, environ={}).mail_type == ()
