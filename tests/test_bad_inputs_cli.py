"""The CLI part of the bad-input battery (issue 9): every bad input ends with a documented non-zero
exit code and exactly one line on stderr that names the argument or the file, never a traceback.

The commands run in-process through ``overtensor.cli.main.main`` (fast); ``test_a_few_bad_inputs_in_a_real
_process`` runs some as real processes to check what a shell sees.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import tests._runfns  # noqa: F401  (registers the test run functions)
from overtensor.cli.main import main
from overtensor.experiments.runner import run_sweep

ROOT = Path(__file__).resolve().parents[1]
GOOD_SPEC = "name: poly\nrun: test-poly\nfixed: {group: 0}\ngrid: {x: [1, 2]}\nseeds: 2\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A folder with a good store, specs and several files that are not stores."""
    d = tmp_path_factory.mktemp("bad-inputs")
    f = {"dir": d}
    f["store"] = d / "good.sqlite"
    run_sweep({"name": "poly", "run": "test-poly", "grid": {"x": [1, 2]}}, f["store"], scheduler="inprocess",
              progress=False)
    f["foreign"] = d / "foreign.db"
    con = sqlite3.connect(f["foreign"])
    con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    con.commit()
    con.close()
    f["empty"] = d / "empty.sqlite"
    f["empty"].write_bytes(b"")
    f["garbage"] = d / "garbage.sqlite"
    f["garbage"].write_bytes(b"not a database at all\n" * 100)
    f["folder"] = d / "folder.sqlite"
    f["folder"].mkdir()
    f["csvdir"] = d / "out.csv"
    f["csvdir"].mkdir()
    f["a_file"] = d / "plain.txt"
    f["a_file"].write_text("x")
    f["spec"] = d / "good.yaml"
    f["spec"].write_text(GOOD_SPEC)
    specs = {
        "subprocess": "name: evil\nrun: 'subprocess:run'\nfixed: {args: ['touch', 'pwned']}\n",
        "dim": "name: f\nrun: fit\nfixed: {dim: -5, rank: 1}\n",
        "dimm": "name: f\nrun: fit\nfixed: {dimm: 5}\n",
        "gridtype": "name: f\nrun: fit\ngrid: {width: [4, 'eight']}\n",
        "dotdot": "name: ../x\nrun: test-poly\ngrid: {x: [1]}\n",
        "abs": "name: /tmp/outside\nrun: test-poly\ngrid: {x: [1]}\n",
        "slash": "name: a/b\nrun: test-poly\ngrid: {x: [1]}\n",
        "newline": 'name: "a\\nb"\nrun: test-poly\ngrid: {x: [1]}\n',
        "yaml": "name: [unclosed\n",
        "toplist": "- 1\n- 2\n",
        "seeds": GOOD_SPEC.replace("seeds: 2", "seeds: -1"),
        "unknownkey": GOOD_SPEC + "grdi: {x: [1]}\n",
        "emptygrid": GOOD_SPEC.replace("grid: {x: [1, 2]}", "grid: {x: []}"),
        "nan": GOOD_SPEC.replace("group: 0", "group: .nan"),
        "big": "name: big\nrun: fit\ngrid: {dim: [5, 6, 7], width: [1, 2, 3]}\nseeds: 1000\n",
    }
    for key, text in specs.items():
        f[f"spec_{key}"] = d / f"{key}.yaml"
        f[f"spec_{key}"].write_text(text)
    f["toml"] = d / "bad.toml"
    f["toml"].write_text("name = \n")
    f["json"] = d / "spec.json"
    f["json"].write_text("{}")
    f["binary"] = d / "binary.yaml"
    f["binary"].write_bytes(b"\xff\xfe\x00\x80" * 10)
    f["specdir"] = d / "dir.yaml"
    f["specdir"].mkdir()
    return f


def run_args(f, spec_key="spec", *extra):
    return ["experiment", "run", str(f[spec_key]), "--inprocess", "--no-progress", "--store",
            str(f["dir"] / "out.sqlite"), *extra]


# (id, argv(files), exit code, words the line must contain (argument or file))
CASES = [
    # argparse: options and values
    ("no-command", lambda f: [], 2, "command"),
    ("unknown-command", lambda f: ["frobnicate"], 2, "frobnicate"),
    ("fit-dim-not-int", lambda f: ["fit", "--dim", "x"], 2, "--dim"),
    ("fit-unknown-option", lambda f: ["fit", "--dimension", "5"], 2, "--dimension"),
    ("fit-missing-value", lambda f: ["fit", "--order"], 2, "--order"),
    ("fit-tol-not-float", lambda f: ["fit", "--tol", "small"], 2, "--tol"),
    ("experiment-no-subcommand", lambda f: ["experiment"], 2, "experiment_command"),
    ("export-no-output", lambda f: ["results", "export", str(f["store"])], 2, "-o/--output"),
    ("export-bad-format", lambda f: ["results", "export", str(f["store"]), "--format", "xlsx", "-o", "x"], 2,
     "--format"),
    ("run-two-schedulers", lambda f: run_args(f, "spec", "--local-workers", "2"), 2, "--local-workers"),
    # fit: values out of range (checked by the API before any work)
    ("fit-dim-zero", lambda f: ["fit", "--dim", "0"], 2, "dim"),
    ("fit-order-one", lambda f: ["fit", "--order", "1"], 2, "order"),
    ("fit-unknown-method", lambda f: ["fit", "--method", "newton"], 2, "method"),
    ("fit-unknown-regime", lambda f: ["fit", "--regime", "sleepy"], 2, "regime"),
    ("fit-negative-lr", lambda f: ["fit", "--dim", "4", "--rank", "1", "--lr", "-1"], 2, "lr"),
    ("fit-bad-weights", lambda f: ["fit", "--weights", "heavy"], 2, "weights"),
    # experiment run: names, presets, options
    ("unknown-experiment", lambda f: ["experiment", "run", "nosuch", "--inprocess"], 2, "nosuch"),
    ("unknown-preset", lambda f: ["experiment", "run", "test-poly-exp", "--preset", "huge", "--inprocess"], 2,
     "--preset"),
    ("local-workers-zero", lambda f: ["experiment", "run", str(f["spec"]), "--local-workers", "0", "--store",
                                      str(f["dir"] / "o.sqlite")], 2, "--local-workers"),
    ("batch-size-zero", lambda f: run_args(f, "spec", "--runs-per-batch", "0"), 2, "--runs-per-batch"),
    # options that apply elsewhere only (were ignored)
    ("preset-with-spec-file", lambda f: run_args(f, "spec", "--preset", "full"), 2, "--preset full"),
    ("workers-without-slurm", lambda f: run_args(f, "spec", "--workers", "3"), 2, "--workers 3"),
    ("unknown-scheduler", lambda f: ["experiment", "run", str(f["spec"]), "--scheduler", "mpi", "--store",
                                     str(f["dir"] / "o.sqlite")], 2, "mpi"),
    ("max-runs-zero", lambda f: run_args(f, "spec", "--max-runs", "0"), 2, "--max-runs"),
    ("grid-over-max-runs", lambda f: run_args(f, "spec", "--max-runs", "3"), 2, "good.yaml"),
    ("grid-over-default-limit", lambda f: run_args(f, "spec_big", "--max-runs", "1000"), 2, "big.yaml"),
    # spec files
    ("spec-runs-subprocess", lambda f: run_args(f, "spec_subprocess"), 2, "subprocess:run"),
    ("spec-dim-negative", lambda f: run_args(f, "spec_dim"), 2, "fixed.dim"),
    ("spec-misspelled-param", lambda f: run_args(f, "spec_dimm"), 2, "fixed.dimm"),
    ("spec-grid-wrong-type", lambda f: run_args(f, "spec_gridtype"), 2, "grid.width[1]"),
    ("spec-name-dotdot", lambda f: run_args(f, "spec_dotdot"), 2, "dotdot.yaml"),
    ("spec-name-absolute", lambda f: run_args(f, "spec_abs"), 2, "'name'"),
    ("spec-name-separator", lambda f: run_args(f, "spec_slash"), 2, "'name'"),
    ("spec-name-newline", lambda f: run_args(f, "spec_newline"), 2, "'name'"),
    ("spec-not-yaml", lambda f: run_args(f, "spec_yaml"), 2, "yaml.yaml"),
    ("spec-not-toml", lambda f: run_args(f, "toml"), 2, "bad.toml"),
    ("spec-top-level-list", lambda f: run_args(f, "spec_toplist"), 2, "toplist.yaml"),
    ("spec-negative-seeds", lambda f: run_args(f, "spec_seeds"), 2, "seeds"),
    ("spec-unknown-key", lambda f: run_args(f, "spec_unknownkey"), 2, "grdi"),
    ("spec-empty-grid-axis", lambda f: run_args(f, "spec_emptygrid"), 2, "grid.x"),
    ("spec-nan-value", lambda f: run_args(f, "spec_nan"), 2, "fixed.group"),
    ("spec-json-suffix", lambda f: run_args(f, "json"), 2, "spec.json"),
    ("spec-binary", lambda f: run_args(f, "binary"), 2, "binary.yaml"),
    ("spec-missing-file", lambda f: ["experiment", "run", str(f["dir"] / "missing.yaml"), "--inprocess"], 4,
     "missing.yaml"),
    ("spec-is-a-directory", lambda f: run_args(f, "specdir"), 4, "dir.yaml"),
    # stores
    ("run-store-is-a-directory", lambda f: [*run_args(f)[:-1], str(f["folder"])], 4, "folder.sqlite"),
    ("run-store-foreign", lambda f: [*run_args(f)[:-1], str(f["foreign"])], 4, "foreign.db"),
    ("run-store-under-a-file", lambda f: [*run_args(f)[:-1], str(f["a_file"] / "s.sqlite")], 4,
     "plain.txt' is a file"),
    ("export-missing-store", lambda f: ["results", "export", str(f["dir"] / "none.sqlite"), "-o", "x.csv"], 4,
     "none.sqlite"),
    ("export-foreign", lambda f: ["results", "export", str(f["foreign"]), "-o", "x.csv"], 4, "foreign.db"),
    ("export-empty", lambda f: ["results", "export", str(f["empty"]), "-o", "x.csv"], 4, "empty.sqlite"),
    ("export-garbage", lambda f: ["results", "export", str(f["garbage"]), "-o", "x.csv"], 4,
     "garbage.sqlite"),
    ("export-directory", lambda f: ["results", "export", str(f["folder"]), "-o", "x.csv"], 4,
     "folder.sqlite"),
    ("export-unknown-experiment", lambda f: ["results", "export", str(f["store"]), "--experiment", "nosuch",
                                             "-o", str(f["dir"] / "x.csv")], 2, "nosuch"),
    ("export-unknown-suffix", lambda f: ["results", "export", str(f["store"]), "-o",
                                         str(f["dir"] / "x.xlsx")], 2, "xlsx"),
    ("export-format-contradicts-suffix", lambda f: ["results", "export", str(f["store"]), "--format",
                                                    "parquet", "-o", str(f["dir"] / "x.csv")], 2,
     "named .csv but the format is 'parquet'"),
    ("export-output-under-a-file", lambda f: ["results", "export", str(f["store"]), "-o",
                                              str(f["a_file"] / "x.csv")], 4, "plain.txt' is a file"),
    ("export-output-is-a-directory", lambda f: ["results", "export", str(f["store"]), "-o",
                                                str(f["csvdir"])], 4, "out.csv"),
    ("report-missing-store", lambda f: ["report", str(f["dir"] / "none.sqlite")], 4, "none.sqlite"),
    ("report-foreign", lambda f: ["report", str(f["foreign"]), "-o", str(f["dir"] / "r.html")], 4,
     "foreign.db"),
    ("report-garbage", lambda f: ["report", str(f["garbage"]), "-o", str(f["dir"] / "r.html")], 4,
     "garbage.sqlite"),
    ("report-directory", lambda f: ["report", str(f["folder"]), "-o", str(f["dir"] / "r.html")], 4,
     "folder.sqlite"),
    ("report-output-is-a-directory", lambda f: ["report", str(f["store"]), "-o", str(f["folder"])], 4,
     "folder.sqlite"),
]


@pytest.mark.parametrize(("argv", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_on_stderr_and_a_documented_exit_code(files, capsys, argv, code, words):
    capsys.readouterr()
    rc = main(argv(files))
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert rc == code, err
    assert len(lines) == 1 and lines[0].strip(), err
    assert lines[0].startswith("overtensor")
    assert "error:" in lines[0]
    assert "Traceback" not in err + out
    assert words in lines[0], lines[0]


def test_the_battery_is_large_and_names_each_case_once():
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


def test_nothing_bad_happened_on_disk(files, capsys):
    for _, argv, _, _ in CASES:  # the subprocess spec must not have run; bad names made no files
        main(argv(files))
    capsys.readouterr()
    d = files["dir"]
    assert not (d / "pwned").exists() and not Path("pwned").exists()
    assert not (d.parent / "x.sqlite").exists()
    assert not Path("/tmp/outside.sqlite").exists()
    assert not (d / "out.sqlite").exists()  # every spec above was refused before the store was made


@pytest.mark.parametrize(("argv", "code", "words"), [
    (["fit", "--dim", "x"], 2, "--dim"),  # argparse's own error path
    (["report", "{dir}/foreign.db"], 4, "foreign.db"),  # the dispatcher's path
])
def test_a_few_bad_inputs_in_a_real_process(files, argv, code, words):
    argv = [a.format(dir=files["dir"]) for a in argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "overtensor.cli.main", *argv], cwd=files["dir"], env=env,
                          capture_output=True, text=True, timeout=120)
    lines = proc.stderr.splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
