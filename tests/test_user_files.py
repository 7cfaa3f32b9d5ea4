"""Files from users, as a new user met them: ragged CSVs, headers, missing folders, temp names."""

import numpy as np
import pytest

from overtensor._io import atomic_write
from overtensor.cli.main import main


def test_a_ragged_csv_is_an_error_not_a_dropped_row(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,5\n")
    assert main(["fit", "--samples", str(bad), "--moment", "3", "--width", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.csv" in err[0]


def test_a_header_line_is_read_the_same_way_by_fit_and_moments(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(300, 6)) * 0.3 + 3 * np.eye(6)[j] for j in range(3)])
    path = tmp_path / "with_header.csv"
    np.savetxt(path, X, delimiter=",", header=",".join(f"x{i}" for i in range(6)), comments="")
    assert main(["moments", "gmm", str(path), "-k", "3", "--json"]) == 0
    assert '"n_samples": 900' in capsys.readouterr().out


def test_a_mixture_from_one_sample_is_a_clear_error(tmp_path, capsys):
    from overtensor.moments import GaussianMixture

    with pytest.raises(ValueError, match="samples"):
        GaussianMixture(2).fit(np.ones((1, 5)))
    one = tmp_path / "one.csv"
    one.write_text("1,2,3,4,5\n")
    assert main(["moments", "gmm", str(one), "-k", "2"]) == 2
    assert "samples" in capsys.readouterr().err


def test_output_to_a_missing_folder_is_refused_before_the_fit(tmp_path, capsys):
    T = tmp_path / "T.npy"
    np.save(T, np.ones((3, 3, 3)))
    assert main(["fit", "--tensor", str(T), "--width", "3", "-o", str(tmp_path / "no" / "r.npz")]) == 4
    captured = capsys.readouterr()
    assert "no such folder" in captured.err and captured.out == ""


def test_rotation_without_the_orthogonal_regime_names_the_flags(capsys):
    assert main(["fit", "--dim", "5", "--rank", "1", "--rotation", "lowdin"]) == 2
    assert "--regime orthogonal" in capsys.readouterr().err


def test_a_failed_atomic_write_names_the_requested_file_not_its_temporary(tmp_path):
    def fail(tmp):
        raise FileNotFoundError(2, "No such file or directory", str(tmp))

    with pytest.raises(FileNotFoundError) as info:
        atomic_write(tmp_path / "report.html", fail)
    assert info.value.filename == str(tmp_path / "report.html")
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone
