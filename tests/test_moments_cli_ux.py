"""``overtensor moments``: what a new user meets (the -o path, bad data files, sizes, outputs).

Every refusal is one line on stderr with a documented exit code, before any work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from overtensor.cli.main import main


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("moments-ux")
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(100, 5)) + 4 * np.eye(5)[i] for i in range(2)])
    np.savetxt(d / "x.csv", X, delimiter=",")
    counts = rng.multinomial(20, np.full(8, 1 / 8), size=60).astype(float)
    np.savetxt(d / "counts.csv", counts, delimiter=",")
    (d / "empty.csv").write_text("")
    (d / "text.npy").write_text("1,2,3\n4,5,6\n")
    np.save(d / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return {"dir": d, "x": d / "x.csv", "counts": d / "counts.csv"}


def run(capsys, argv) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("overtensor: error:"), err
    return lines[0]


@pytest.mark.parametrize("kind", ["gmm", "topics", "lda"])
def test_output_in_a_missing_folder_is_refused_and_no_folder_is_made(data, capsys, kind):
    src = data["x"] if kind == "gmm" else data["counts"]
    target = data["dir"] / "nosuch" / "deeper" / "out.json"
    rc, _, err = run(capsys, ["moments", kind, src, "-k", "2", "-o", target])
    assert rc == 4
    assert "nosuch" in one_error_line(err) and "no such folder" in err
    assert not (data["dir"] / "nosuch").exists()


def test_output_with_an_unknown_suffix_is_refused_before_any_work(data, capsys):
    # The data file does not exist: the -o check comes first, so the error is about -o.
    rc, _, err = run(capsys, ["moments", "gmm", data["dir"] / "absent.csv", "-k", "2",
                              "-o", data["dir"] / "out.xyz"])
    line = one_error_line(err)
    assert rc == 2 and "out.xyz" in line and ".json, .csv, .npz" in line
    assert not (data["dir"] / "out.xyz").exists()


def test_output_that_is_a_directory_is_refused_clearly(data, capsys):
    rc, _, err = run(capsys, ["moments", "gmm", data["x"], "-k", "2", "-o", data["dir"]])
    line = one_error_line(err)
    assert rc == 4 and "-o must be a file path, got a directory" in line and str(data["dir"]) in line


def test_the_three_output_formats_still_write(data, capsys):
    for suffix in (".json", ".csv", ".NPZ"):
        target = data["dir"] / f"gmm{suffix}"
        rc, _, err = run(capsys, ["moments", "gmm", data["x"], "-k", "2", "--json", "-o", target])
        assert rc == 0, err
        assert target.stat().st_size > 0
        assert not list(data["dir"].glob("*.otmp*"))


@pytest.mark.parametrize("kind", ["gmm", "topics", "lda"])
def test_an_empty_csv_is_one_line_without_a_numpy_warning(data, capsys, kind):
    rc, _, err = run(capsys, ["moments", kind, data["dir"] / "empty.csv", "-k", "2"])
    line = one_error_line(err)  # exactly one line: NumPy's UserWarning is not printed
    assert rc == 2 and "empty.csv" in line and "no numbers" in line


@pytest.mark.parametrize(("name", "words"), [("text.npy", "not a NumPy .npy array"),
                                             ("objects.npy", "object (pickled) data")])
def test_a_bad_npy_file_is_named_without_advising_unsafe_loading(data, capsys, name, words):
    rc, _, err = run(capsys, ["moments", "gmm", data["dir"] / name, "-k", "2"])
    line = one_error_line(err)
    assert rc == 2 and name in line and words in line
    assert "allow_pickle" not in line and "pickle.load" not in line


def test_lda_with_more_topics_than_the_data_support_is_a_short_message_about_topics(data, capsys):
    # counts.csv is one uniform topic over 8 words: M2 is rank one plus noise, so asking for 8
    # topics (k = V, allowed up front) meets eigenvalues <= 0 among the top 8.
    rc, _, err = run(capsys, ["moments", "lda", data["counts"], "--topics", "8"])
    line = one_error_line(err)
    assert rc == 2 and "topics" in line and "components" not in line
    assert "ask for at most" in line and len(line) < 250, line
    rc, _, err = run(capsys, ["moments", "lda", data["counts"], "--topics", "9"])
    line = one_error_line(err)
    assert rc == 2 and "-k/--topics must be <= n_words=8, got 9" in line


def test_whitening_message_shows_only_the_smallest_few_eigenvalues():
    import torch

    from overtensor.moments.whitening import Whitening

    values = torch.cat([torch.linspace(1.0, 0.1, 40), torch.tensor([-1e-3, -2e-3])]).double()
    with pytest.raises(ValueError) as info:
        Whitening(torch.eye(42, dtype=torch.float64), values)
    text = str(info.value)
    assert "only 40 positive eigenvalues among the top 42" in text and "at most 40 components" in text
    assert len(text) < 250 and "0.978" not in text  # the spectrum is not listed


def test_gaussian_mixture_docstring_lists_parameters_only_and_documents_every_attribute():
    import inspect

    from overtensor.moments import GaussianMixture

    doc = inspect.getdoc(GaussianMixture)
    params = doc.split("Parameters\n----------\n")[1].split("\n\n")[0].splitlines()
    heads = [line for line in params if line and not line.startswith(" ")]
    # Every unindented line of the Parameters list is "name : type" (no stray paragraph).
    assert [h.split(" : ")[0] for h in heads] == ["n_components", "covariance_type", "discovery",
                                                  "exact_below", "power_iters", "random_state"], heads
    attributes = doc.split("Attributes\n----------\n")[1].split("\n\n")[0]
    names = {line.split(" : ")[0] for line in attributes.splitlines() if line and line[0] != " "}
    assert {"means_", "weights_", "covariances_", "precisions_", "covariance_", "whitened_error_",
            "candidate_scores_", "selected_", "n_features_in_", "feature_names_in_",
            "timings_"} <= names


def test_gaussian_mixture_selected_is_a_key_of_the_candidate_scores(data):
    from overtensor.moments import GaussianMixture

    X = np.loadtxt(data["x"], delimiter=",")
    gm = GaussianMixture(2, random_state=0).fit(X)
    assert gm.selected_ in gm.candidate_scores_
    assert gm.candidate_scores_[gm.selected_] == max(gm.candidate_scores_.values())


def _csv(path: Path) -> tuple[list[str], np.ndarray]:
    header = path.read_text().splitlines()[0].split(",")
    return header, np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def test_csv_outputs_name_every_column_and_keep_alpha_and_the_variance(data, capsys):
    import json

    d = data["dir"]
    rc, out, err = run(capsys, ["moments", "gmm", data["x"], "-k", "2", "--json", "-o", d / "g.csv"])
    assert rc == 0, err
    doc = json.loads(out)
    names, rows = _csv(d / "g.csv")
    assert names == ["weight", "variance", "x_0", "x_1", "x_2", "x_3", "x_4"]
    assert rows.shape == (2, len(names))
    np.testing.assert_allclose(rows[:, 1], doc["variances"], rtol=1e-12)  # σ_i² per component
    np.testing.assert_allclose(rows[:, 2:], doc["means"], rtol=1e-12)

    rc, out, err = run(capsys, ["moments", "lda", data["counts"], "-k", "1", "--alpha0", "2",
                                "--json", "-o", d / "l.csv"])
    assert rc == 0, err
    doc = json.loads(out)
    names, rows = _csv(d / "l.csv")
    assert names == ["weight", "alpha", *(f"word_{i}" for i in range(8))]
    assert rows.shape == (1, 10)
    np.testing.assert_allclose(rows[:, 1], doc["alpha"], rtol=1e-12)
    assert rows[0, 1] == pytest.approx(2.0)  # Σ alpha = alpha0

    rc, _, err = run(capsys, ["moments", "topics", data["counts"], "-k", "1", "-o", d / "t.csv"])
    assert rc == 0, err
    names, rows = _csv(d / "t.csv")
    assert names == ["weight", *(f"word_{i}" for i in range(8))] and rows.shape == (1, 9)


def test_lda_table_shows_alpha_next_to_the_weight(data, capsys):
    rc, out, err = run(capsys, ["moments", "lda", data["counts"], "-k", "1", "--alpha0", "2"])
    assert rc == 0, err
    assert "alpha" in out and "weight (alpha/alpha0)" in out and "2" in out


@pytest.mark.parametrize(("kind", "option"), [("gmm", "--n-components"), ("gmm", "-k"),
                                              ("topics", "--topics"), ("topics", "-k"),
                                              ("lda", "--n-components"), ("lda", "-k")])
def test_components_and_topics_are_both_accepted(data, capsys, kind, option):
    src = data["x"] if kind == "gmm" else data["counts"]
    rc, out, err = run(capsys, ["moments", kind, src, option, "1", "--json"])
    assert rc == 0, err
    assert '"weights": [1.0]' in out


def test_topics_counts_topics_only_gmm_refuses_it(data, capsys):
    # a flag means one thing in every subcommand: --topics is the topic models' (issue 25)
    rc, out, err = run(capsys, ["moments", "gmm", data["x"], "-k", "2", "--topics", "2", "--json"])
    assert rc == 2 and out == "" and "unrecognized arguments: --topics" in err and err.count("\n") == 1
    rc, out, err = run(capsys, ["moments", "gmm", data["x"], "--topics", "2"])
    assert rc == 2 and out == "" and "-k/--n-components" in err


def test_lda_at_alpha0_zero_is_the_single_topic_model_with_zero_alpha():
    import torch

    from overtensor.moments import SingleTopicModel, SpectralLDA
    from overtensor.moments.sources import planted_documents

    topic_word = torch.tensor([[0.6, 0.3, 0.05, 0.05], [0.05, 0.05, 0.3, 0.6]], dtype=torch.float64)
    counts, _ = planted_documents(topic_word, torch.tensor([0.7, 0.3]), 3000, 10, random_state=0)
    lda = SpectralLDA(2, alpha0=0.0, random_state=0).fit(counts.numpy())
    single = SingleTopicModel(2, random_state=0).fit(counts)
    assert np.all(lda.alpha_ == 0)  # documented: alpha_ = alpha0 * weights_
    assert lda.weights_.sum() == pytest.approx(1.0)
    # The two estimators of the same moments agree (and find the planted 0.7 / 0.3 weights).
    np.testing.assert_allclose(np.sort(lda.weights_), np.sort(single.weights_), atol=1e-6)
    np.testing.assert_allclose(lda.weights_, [0.7, 0.3], atol=0.05)


def test_gmm_npz_holds_the_spherical_variance_as_the_json_does(capsys, data, tmp_path):
    npz, js = tmp_path / "p.npz", tmp_path / "p.json"
    assert run(capsys, ["moments", "gmm", data["x"], "-k", "2", "-o", npz])[0] == 0
    assert run(capsys, ["moments", "gmm", data["x"], "-k", "2", "-o", js])[0] == 0
    import json

    saved, ref = np.load(npz), json.loads(js.read_text())
    assert sorted(saved.files) == ["labels", "means", "pooled_variance", "variances", "weights"]
    assert "covariance" not in ref  # the scalar is named for what it is
    assert float(saved["pooled_variance"]) == pytest.approx(ref["pooled_variance"], rel=1e-6)
    np.testing.assert_allclose(saved["variances"], ref["variances"], rtol=1e-6)
    assert saved["labels"].shape == (200,)
    # the pooled variance is the weight-averaged per-component variance Σ w_i σ_i²
    pooled = float(np.dot(ref["weights"], ref["variances"]))
    assert pooled > 0 and ref["pooled_variance"] == pytest.approx(pooled, rel=1e-9)


def test_gmm_writes_labels_and_per_component_variances(data, capsys, tmp_path):
    import json

    labels = tmp_path / "labels.csv"
    rc, out, err = run(capsys, ["moments", "gmm", data["x"], "-k", "2", "--json", "--labels", labels,
                                "-o", tmp_path / "p.csv"])
    assert rc == 0, err
    res = json.loads(out)
    assert len(res["variances"]) == 2 and res["model"] == "spherical-gmm"
    lab = np.loadtxt(labels, skiprows=1)
    assert labels.read_text().startswith("label\n") and lab.shape == (200,)
    assert sorted(np.bincount(lab.astype(int))) == sorted(res["sizes"])
    # the two planted blobs are found: labels split the rows 100 / 100
    assert set(np.bincount(lab[:100].astype(int), minlength=2)) == {0, 100}
    names, rows = _csv(tmp_path / "p.csv")
    assert names[:2] == ["weight", "variance"] and np.allclose(rows[:, 1], res["variances"])
    rc, out, _ = run(capsys, ["moments", "gmm", data["x"], "-k", "2"])
    assert rc == 0 and "variance" in out and "samples" in out


def test_labels_path_is_checked_before_any_work(data, capsys):
    rc, _, err = run(capsys, ["moments", "gmm", data["dir"] / "absent.csv", "-k", "2",
                              "--labels", data["dir"] / "labels.txt"])
    assert rc == 2 and "--labels" in one_error_line(err) and ".csv" in err


def test_topics_with_a_vocabulary_print_top_words_and_sparse_npz_works(data, capsys, tmp_path):
    import json

    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    topics = np.array([[0.45, 0.45, 0.02, 0.02, 0.02, 0.02, 0.01, 0.01],
                       [0.02, 0.02, 0.45, 0.45, 0.02, 0.02, 0.01, 0.01],
                       [0.01, 0.01, 0.02, 0.02, 0.45, 0.45, 0.02, 0.02]])
    z = rng.choice(3, 3000)
    counts = np.stack([rng.multinomial(10, topics[h]) for h in z]).astype(float)
    counts[:5] = 0
    counts[:5, 0] = 1  # five one-word documents
    sp.save_npz(tmp_path / "counts.npz", sp.csr_matrix(counts))
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    for kind in ("topics", "lda"):
        argv = ["moments", kind, tmp_path / "counts.npz", "-k", "3", "--vocab",
                tmp_path / "vocab.txt", "--min-words", "3", "--top", "2"]
        rc, out, err = run(capsys, [*argv, "--alpha0", "0.1"] if kind == "lda" else argv)
        assert rc == 0, err
        assert "top words" in out and "n_documents_dropped" in out
        rc, out, err = run(capsys, [*argv, "--json"])
        res = json.loads(out)
        assert res["n_documents_dropped"] == 5 and res["n_documents"] == 3000
        assert sorted(map(sorted, res["top_words"])) == [["alpha", "beta"], ["delta", "gamma"],
                                                         ["eps", "zeta"]]
    # without --min-words the one-word documents are an error naming the remedy
    rc, _, err = run(capsys, ["moments", "topics", tmp_path / "counts.npz", "-k", "3"])
    assert rc == 2 and "min_words" in one_error_line(err)
    (tmp_path / "short.txt").write_text("a\nb\n")
    rc, _, err = run(capsys, ["moments", "topics", tmp_path / "counts.npz", "-k", "3",
                              "--vocab", tmp_path / "short.txt"])
    assert rc == 2 and "has 2 lines, the counts have 8 columns" in one_error_line(err)


def test_min_words_below_three_is_refused_before_any_work(data, capsys):
    rc, _, err = run(capsys, ["moments", "lda", data["dir"] / "absent.csv", "-k", "2",
                              "--min-words", "2"])
    assert rc == 2 and "--min-words must be >= 3" in one_error_line(err)


@pytest.mark.parametrize("kind", ["gmm", "topics", "lda"])
def test_a_count_below_one_is_refused_naming_the_option(data, capsys, kind):
    src = data["x"] if kind == "gmm" else data["counts"]
    rc, _, err = run(capsys, ["moments", kind, src, "-k", "0"])
    assert rc == 2 and err.strip().count("\n") == 0
    assert "-k/--n-components must be >= 1, got 0" in err


@pytest.mark.parametrize("kind", ["gmm", "topics", "lda"])
def test_a_count_above_the_datas_dimension_is_refused_naming_the_option(data, capsys, kind):
    # Known only once the file is read; was the estimator's parameter name (n_components,
    # n_topics), not the option the user typed.
    src = data["x"] if kind == "gmm" else data["counts"]
    rc, _, err = run(capsys, ["moments", kind, src, "-k", "500",
                              *(["--alpha0", "1.0"] if kind == "lda" else [])])
    assert rc == 2 and err.strip().count("\n") == 0, err
    option = "-k/--n-components" if kind == "gmm" else "-k/--topics"
    assert f"{option} must be <" in err and "got 500" in err
    assert "n_components" not in err and "n_topics" not in err
