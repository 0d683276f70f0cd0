import json

import pytest


@pytest.fixture
def initialised(vestige):
    assert vestige("init").exit_code == 0


def test_open_list_show_close_reopen(vestige, initialised):
    opened = vestige("case", "new", "--ref", "LAB-2026-0042", "--title", "Forum post images")
    assert opened.exit_code == 0 and opened.stdout.strip() == "case LAB-2026-0042 opened: Forum post images"
    vestige("case", "new", "--ref", "LAB-2026-0043", "--title", "Press photos")
    listed = json.loads(vestige("case", "list", "--json").stdout)
    assert [c["reference"] for c in listed] == ["LAB-2026-0043", "LAB-2026-0042"]
    assert listed[1]["images"] == 0 and listed[1]["created_by"] == "tester"
    found = json.loads(vestige("case", "list", "--search", "press", "--json").stdout)
    assert [c["reference"] for c in found] == ["LAB-2026-0043"]
    assert vestige("case", "close", "LAB-2026-0042").stdout.strip() == "case LAB-2026-0042 is closed"
    assert json.loads(vestige("case", "show", "LAB-2026-0042", "--json").stdout)["status"] == "closed"
    vestige("case", "reopen", "LAB-2026-0042")
    shown = json.loads(vestige("case", "show", "LAB-2026-0042", "--json").stdout)
    assert shown["status"] == "open" and shown["custody_events"] == 3
    assert vestige("custody", "verify", "LAB-2026-0042").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ref", "LAB 1", "--title", "x"], "case reference 'LAB 1' is not valid"),
        (["--ref", "../etc", "--title", "x"], "is not valid"),
        (["--ref", "LAB-1", "--title", "   "], "a case needs a title"),
    ],
)
def test_invalid_cases_are_refused_in_one_line(vestige, initialised, args, message):
    result = vestige("case", "new", *args)
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_reference_is_unique(vestige, initialised):
    vestige("case", "new", "--ref", "LAB-1", "--title", "first")
    again = vestige("case", "new", "--ref", "LAB-1", "--title", "second")
    assert again.exit_code == 1 and again.stderr.strip() == "error: case LAB-1 already exists"


@pytest.mark.parametrize("command", [["case", "show", "NOPE"], ["images", "NOPE"], ["custody", "verify", "NOPE"],
                                     ["case", "close", "NOPE"]])
def test_unknown_case_reference(vestige, initialised, command):
    result = vestige(*command)
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no case 'NOPE'; `vestige case list` shows the cases"
