"""One CSV reader for every command (issue 23, item 2; issue 22, item 6): a header is never
guessed from one field, a BOM is skipped, missing values are refused naming line and column,
pandas' index column is dropped (with a header) or refused (without one)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from overtensor.cli.main import main
from overtensor.cli.userdata import read_array

X = np.random.default_rng(0).normal(size=(40, 3))


def rows(A: np.ndarray) -> str:
    return "\n".join(",".join(repr(float(v)) for v in r) for r in A) + "\n"


@pytest.mark.parametrize("write", [
    lambda p: pd.DataFrame(X).to_csv(p),                         # ",0,1,2" and an index column
    lambda p: pd.DataFrame(X).to_csv(p, index=False),            # "0,1,2": a numeric header
    lambda p: pd.DataFrame(X, columns=list("abc")).to_csv(p),    # ",a,b,c" and an index column
    lambda p: pd.DataFrame(X).rename_axis("i").to_csv(p),        # "i,0,1,2": a named index
    lambda p: np.savetxt(p, X, delimiter=","),
    lambda p: np.savetxt(p, X, delimiter=",", header="a,b,c"),   # "# a,b,c": a comment line
    lambda p: p.write_text("a,b,c\n" + rows(X), encoding="utf-8-sig"),  # Excel "CSV UTF-8"
    lambda p: p.write_text(rows(X), encoding="utf-8-sig"),       # a BOM before a data line
    lambda p: p.write_bytes(("x,y,z\r\n" + rows(X).replace("\n", "\r\n")).encode()),
], ids=["pandas-index", "pandas-no-index", "named-index", "named-index-column", "savetxt",
        "savetxt-header", "bom-header", "bom-data", "crlf"])
def test_every_common_csv_gives_the_40_samples_of_3_features(tmp_path, write):
    path = tmp_path / "X.csv"
    write(path)
    A = read_array(path, "--samples")
    np.testing.assert_allclose(A, X, rtol=1e-12)


def test_a_named_first_column_is_data(tmp_path):
    path = tmp_path / "X.csv"
    pd.DataFrame(X, columns=["i", "b", "c"]).to_csv(path, index=False)
    assert read_array(path, "--samples").shape == (40, 3)


@pytest.mark.parametrize("text, where", [
    ("1,NA,3\n4,5,6\n7,8,9\n", "line 1, column 2"),      # a first row with NA is data, refused
    ("a,b,c\n1,2,3\n4,,6\n", "line 3, column 2"),
    ("a,b,c\n1,2,3\n4,5,nan\n", "line 3, column 3"),
    ("1,2,3\n\n4,5,NULL\n", "line 3, column 3"),         # blank lines keep the line numbers
    ("1,2,3\n4,abc,6\n", "line 2, column 2"),
    ("1,2,3\n4,inf,6\n", "line 2, column 2"),
    ("1,2,3\n4,5\n", "line 2, column 3"),
    (",a,b\n0,1,NA\n1,2,3\n", "line 2, column 3"),       # columns counted in the file, index included
])
def test_missing_values_are_refused_naming_line_and_column(tmp_path, text, where):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=where):
        read_array(path, "--samples")


@pytest.mark.parametrize("text, match", [
    ("x,1,2\n4,5,6\n", "mixes names"),
    ("1,2\n4,5,6\n", "more fields"),
    ("", "no numbers"),
    ("a,b,c\n", "no numbers"),
])
def test_malformed_files_are_one_line_errors(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_array(path, "--samples")


def test_an_index_column_without_a_header_is_refused_with_how_to_save(tmp_path):
    path = tmp_path / "X.csv"
    pd.DataFrame(X).to_csv(path, header=False)
    with pytest.raises(ValueError, match="index=False"):
        read_array(path, "--samples")


def test_a_pandas_csv_gives_dim_13_for_13_features(tmp_path, capsys):
    """Issue 22, item 6: ``--samples wine.csv`` gave dim 14 (the index read as a feature)."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(30, 13)), columns=[f"f{i}" for i in range(13)])
    path = tmp_path / "wine.csv"
    frame.to_csv(path)
    assert main(["fit", "--samples", str(path), "--moment", "3", "--width", "5", "--steps", "5",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dim"] == 13


def test_moments_gmm_reads_a_numeric_pandas_header_as_a_header(tmp_path, capsys):
    rng = np.random.default_rng(0)
    Y = np.concatenate([rng.normal(size=(20, 6)) * 0.3 + 3 * np.eye(6)[j] for j in range(2)])
    path = tmp_path / "pandas.csv"
    pd.DataFrame(Y).to_csv(path, index=False)
    assert main(["moments", "gmm", str(path), "-k", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_samples"] == 40


def test_the_cli_names_line_and_column_of_a_missing_value_in_one_line(tmp_path, capsys):
    path = tmp_path / "X.csv"
    path.write_text("a,b\n1,2\n3,NA\n")
    assert main(["moments", "gmm", str(path), "-k", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "X.csv" in err[0] and "line 3, column 2" in err[0]


def test_whitespace_text_files_use_the_same_rules(tmp_path):
    path = tmp_path / "X.txt"
    path.write_text("  1 2 3\n4\t5 6\n")
    np.testing.assert_array_equal(read_array(path, "--samples"), [[1, 2, 3], [4, 5, 6]])
    path.write_text("1 2 3\n4 NA 6\n")
    with pytest.raises(ValueError, match="line 2, column 2"):
        read_array(path, "--samples")


def test_a_semicolon_separated_file_is_refused_with_how_to_save_it(tmp_path):
    path = tmp_path / "X.csv"
    path.write_text("a;b;c\n1;2;3\n4;5;6\n")
    with pytest.raises(ValueError, match=r"line 2, column 1.*separated by ';'"):
        read_array(path, "--samples")
