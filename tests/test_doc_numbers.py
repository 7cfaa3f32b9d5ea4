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


def test_the_inventory_classes_every_number_and_counts_the_checked_ones_as_covered():
    # tests/doc_inventory.py (issue 25): every number the check regenerates is "covered" there, and
    # a result next to its command is not mistaken for code (a JSON comment, a printed-output block)
    from tests.doc_inventory import covered_spans, inventory

    numbers = inventory()
    assert {n.cls for n in numbers} <= {"covered", "measured", "input", "other"}
    covered = {(n.doc, n.pos, n.pos + len(n.text)) for n in numbers if n.cls == "covered"}
    for doc, doc_spans in covered_spans().items():
        for a, b in doc_spans:  # the text's group overlaps a covered number (which may hold its "−")
            assert any(d == doc and p < b and a < q for d, p, q in covered), (doc, a, b)
    readme = [n for n in numbers if n.doc == "README.md"]
    assert any(n.text == "0.931" and n.cls == "covered" for n in readme)  # a bash comment's result
    assert not any(n.text in ("2026", "2020") for n in readme)  # dates and citations left out


def test_values_at_a_precision_floor_are_the_same_statement(monkeypatch):
    # adaptive-regression's GD row: 1.2e-15 in the text; any value below the floor 1e-13 is rounding,
    # one above it is a different result
    import tests.doc_numbers as dn

    gd = next(n for n in NUMBERS if n.command == "adaptive-regression-small")
    assert in_text(gd)[0][:2] == ["1.2e-15", "3.2e-15"] and gd.floor == 1e-13
    monkeypatch.setattr(dn, "fresh", lambda n: ["7e-14", "1e-16", "0.727", "0.125", "0.727"])
    assert all(ok for _, _, ok in compare(gd))
    monkeypatch.setattr(dn, "fresh", lambda n: ["2e-12", "1e-16", "0.727", "0.125", "0.80"])
    assert [ok for _, _, ok in compare(gd)] == [False, True, True, True, False]
