"""``overtensor fit`` on the user's own data: --tensor, --cp, --samples, -o (issue 11)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import overtensor as ot
from overtensor.cli.main import main


@pytest.fixture
def files(tmp_path):
    target = ot.random_target(order=3, dim=6, rank=2, random_state=1)
    w, U = target.weights.numpy(), target.factors.numpy()
    np.save(tmp_path / "T.npy", np.einsum("r,ri,rj,rk->ijk", w, U, U, U))
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "U.npy", U)
    np.save(tmp_path / "asym.npy", np.random.default_rng(0).normal(size=(4, 4, 4)))
    # samples whose third moment is the CP target: each row u_j (2 w_j)^(1/3) five times
    X = np.repeat(U * np.cbrt(2 * w)[:, None], 5, axis=0)  # (1/n) sum x^3 = sum_j w_j u_j^3
    np.save(tmp_path / "X.npy", X)
    np.savetxt(tmp_path / "X.csv", X, delimiter=",", header=",".join("abcdef"), comments="")
    return tmp_path, target


def run(capsys, *argv):
    code = main(["fit", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_dense_tensor_from_npy_to_npz(files, capsys):
    d, target = files
    code, out, _ = run(capsys, "--tensor", d / "T.npy", "--width", 8, "-o", d / "r.npz", "--json")
    assert code == 0
    summary = json.loads(out)  # one JSON object
    assert summary["relative_error"] <= 1e-4 and summary["order"] == 3 and summary["dim"] == 6
    with np.load(d / "r.npz") as z:
        assert set(z.files) == {"weights", "factors", "order", "summary"}
        assert z["factors"].shape == (z["weights"].shape[0], 6) and int(z["order"]) == 3
        assert json.loads(str(z["summary"]))["relative_error"] == summary["relative_error"]
        cp = ot.SymmetricCP(torch.from_numpy(z["weights"]), torch.from_numpy(z["factors"]), 3)
    assert ot.recovery(cp, target).recovered == 2  # the file holds the decomposition itself


def test_cp_files_and_json_output_report_recovery(files, capsys):
    d, _ = files
    code, out, _ = run(capsys, "--cp", d / "w.npy", d / "U.npy", "--json", "-o", d / "r.json")
    assert code == 0
    summary = json.loads(out)
    assert summary["width"] == 10 and summary["recovered"] == 2  # default width 5 r
    doc = json.loads((d / "r.json").read_text())
    assert len(doc["weights"]) == len(doc["factors"]) == summary["found_rank"]


@pytest.mark.parametrize("name", ["X.npy", "X.csv"])
def test_samples_moment_tensor(files, capsys, name):
    d, _ = files
    code, out, _ = run(capsys, "--samples", d / name, "--moment", 3, "--width", 8, "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["relative_error"] <= 1e-4 and summary["found_rank"] == 2


def test_readable_summary_without_json(files, capsys):
    d, _ = files
    code, out, _ = run(capsys, "--tensor", d / "T.npy", "--width", 8)
    assert code == 0 and "relative_error" in out and "overtensor fit" in out


@pytest.mark.parametrize("argv, message", [
    (["--tensor", "asym.npy", "--width", 8], "--tensor {d}/asym.npy: tensor is not symmetric"),
    (["--tensor", "T.npy"], "--width is required with --tensor"),
    (["--tensor", "T.npy", "--width", 8, "--order", 4], "--order 4 does not match"),
    (["--tensor", "T.npy", "--width", 8, "--dim", 3], "--dim: only for the synthetic target"),
    (["--tensor", "T.npy", "--width", 8, "-o", "r.txt"], "-o r.txt: unknown output format"),
    (["--cp", "U.npy", "w.npy"], "--cp {d}/U.npy: weights must have shape (r,), got (2, 6)"),
    (["--cp", "w.npy", "T.npy"], "--cp {d}/T.npy: factors must have shape (r, d) = (2, d)"),
    (["--samples", "X.npy", "--width", 8], "--samples needs --moment L"),
    (["--moment", 3], "--moment 3 needs --samples"),
])
def test_bad_input_is_one_line_on_stderr_with_exit_code_2(files, capsys, argv, message):
    d, _ = files
    argv = [str(d / a) if str(a).endswith(".npy") else a for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message.format(d=d) in err, err


def test_a_missing_file_is_a_file_system_error_exit_code_4(files, capsys):
    d, _ = files
    code, out, err = run(capsys, "--tensor", str(d / "none.npy"), "--width", 8)
    assert code == 4 and out == ""
    assert err.count("\n") == 1 and "--tensor: no such file" in err and "none.npy" in err, err


def test_a_flag_means_one_thing_in_every_subcommand():
    # A flag shared by subcommands has one destination and one type everywhere; and the four that
    # used to change meaning now have one each: --rank (a synthetic target's rank; the cap is
    # --max-rank), --components (its kind; moments count with -k/--n-components), --samples (a
    # file of samples; train's training-set size is --train-samples), --batch-size (samples per
    # training step; the experiment runner's is --runs-per-batch).
    import argparse

    from overtensor.cli.main import build_parser

    def options(parser, path=()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from options(sub, (*path, name))
            else:
                for flag in action.option_strings:
                    yield flag, (action.dest, getattr(action.type, "__name__", None)), path

    meaning: dict[str, set] = {}
    where: dict[str, set] = {}
    for flag, kind, path in options(build_parser()):
        meaning.setdefault(flag, set()).add(kind)
        where.setdefault(flag, set()).add(" ".join(path))
    assert not {f: k for f, k in meaning.items() if len(k) > 1}
    assert where["--components"] == {"fit"} and where["--samples"] == {"fit"}
    assert where["--batch-size"] == {"train"} and "--runs-per-batch" in meaning
    assert {"moments gmm", "moments topics", "moments lda"} <= where["--n-components"]


def test_library_warnings_reach_the_terminal_on_one_line(tmp_path):
    # Data whose means are linearly dependent: the moment estimate of a variance is not positive,
    # and scikit-learn's machinery would print the warning with its own file and source line.
    import subprocess
    import sys

    import numpy as np

    rng = np.random.default_rng(0)
    means = ([3, 0, 0, 0], [0, 3, 0, 0], [3, 3, 0, 0])
    X = np.concatenate([rng.normal(m, 1.0, size=(200, 4)) for m in means])
    path = tmp_path / "g.csv"
    np.savetxt(path, X, delimiter=",")
    out = subprocess.run([sys.executable, "-m", "overtensor.cli.main", "moments", "gmm", str(path),
                          "-k", "3"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("overtensor: warning: ") for line in lines), out.stderr


@pytest.mark.parametrize("name", ["folder", "folder.npy"])
def test_a_directory_is_a_file_system_error_exit_code_4(files, capsys, name):
    d, _ = files
    (d / name).mkdir()
    code, out, err = run(capsys, "--tensor", str(d / name), "--width", 8)
    assert code == 4 and out == ""
    assert err.count("\n") == 1 and "--tensor: is a directory" in err and name in err, err
