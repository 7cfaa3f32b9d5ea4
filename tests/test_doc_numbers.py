"""Every number of README.md and docs/ listed in tests/doc_numbers.py regenerates: its command,
run now, prints it within the stated tolerance (issue 25). Long commands run only with
``OVERTENSOR_LONG_DOC_NUMBERS=1``; their text names the date and machine they were measured on."""

from __future__ import annotations

import os

import pytest

from tests.doc_numbers import COMMANDS, NUMBERS, DocNumber, compare, in_text

LONG = os.environ.get("OVERTENSOR_LONG_DOC_NUMBERS") == "1"


@pytest.mark.parametrize("number", NUMBERS, ids=lambda n: n.id)
def test_the_number_in_the_text_is_what_its_command_prints(number: DocNumber):
    in_text(number)  # the sentence is there (and a long one says when it was measured)
    if COMMANDS[number.command].long and not LONG:
        pytest.skip("a long command: OVERTENSOR_LONG_DOC_NUMBERS=1 runs it")
    drift = [(a, b) for a, b, ok in compare(number) if not ok]
    assert not drift, (f"{number.doc}: the text says {[a for a, _ in drift]}, the command "
                       f"{number.command!r} prints {[b for _, b in drift]} now (tolerance {number.tol:g}"
                       f"{' relative' if number.rel else ''}): correct the text from a fresh run")


def test_the_check_catches_a_drifted_number(monkeypatch):
    # a number changed in the text by more than its tolerance fails the check
    import tests.doc_numbers as dn

    plain, shifted = [n for n in NUMBERS if n.command == "power-variants"][::3][:2]
    assert in_text(plain)[0] == ["9.5e-2"] and in_text(shifted)[0] == ["1.5e-8", "1.5e-8"]
    monkeypatch.setattr(dn, "fresh", lambda n: ["0.0975"])  # 2.6 % off: beyond 2 % relative
    assert [ok for _, _, ok in compare(plain)] == [False]
    monkeypatch.setattr(dn, "fresh", lambda n: ["0.0952"])
    assert [ok for _, _, ok in compare(plain)] == [True]
    # at the float64 floor, 0.0 and 2e-8 are the same fit; 5e-8 is not
    monkeypatch.setattr(dn, "fresh", lambda n: ["5e-8", "0.0"])
    assert [ok for _, _, ok in compare(shifted)] == [False, True]
