"""Specs are parsed with a budget (issue 23, item 4) and built-in names stay names (item 3)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from overtensor.cli.main import main
from overtensor.experiments.spec import SpecError, load_spec

ROOT = Path(__file__).resolve().parents[1]

BOMB = textwrap.dedent("""\
    name: bomb
    run: opt_energy
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    fixed: {x: *i}
    """)


@pytest.mark.parametrize("where", ["fixed: {x: *i}", "description: *i", "seeds: *i",
                                   "grid: {x: *i}"])
def test_a_yaml_bomb_is_refused_at_the_first_alias(tmp_path, where):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB.replace("fixed: {x: *i}", where))
    with pytest.raises(SpecError, match="alias") as info:
        load_spec(path)
    assert "bomb.yaml" in str(info.value) and "line 4" in str(info.value)


def test_the_bomb_costs_under_100_mb_in_a_fresh_process(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    code = ("import resource, sys\n"
            "from overtensor.cli.main import main\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"rc = main(['experiment', 'run', {str(path)!r}, '--inprocess'])\n"
            "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "print(rc, after - before)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
                         timeout=300)
    rc, grown_kb = out.stdout.split()
    assert rc == "2" and "alias" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert int(grown_kb) < 100 * 1024  # the parse itself grows the process by < 100 MB


def test_an_oversized_spec_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: big\nrun: opt_energy\ndescription: '" + "x" * (1 << 20) + "'\n")
    with pytest.raises(SpecError, match="larger than"):
        load_spec(path)


def test_a_built_in_name_stays_a_name_when_a_folder_of_that_name_exists(tmp_path, monkeypatch,
                                                                         capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vs-classical").mkdir()  # e.g. the small preset's figures folder
    args = ["experiment", "run", "vs-classical", "--preset", "tiny", "--store", "s.sqlite",
            "--inprocess", "--no-progress"]
    assert main(args) == 0
    assert (tmp_path / "vs-classical.tiny").is_dir()  # this preset's figures folder
    capsys.readouterr()
    assert main(args) == 0  # resumes in place
    assert "4 already done, 0 done" in capsys.readouterr().out


def test_a_file_named_like_a_built_in_without_a_spec_suffix_is_still_the_built_in(tmp_path,
                                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vs-classical").write_text("not a spec")
    from overtensor.cli.experiment import _resolve

    spec, exp = _resolve("vs-classical", "tiny")
    assert exp is not None and spec["name"] == "vs-classical"
