import pytest

from overtensor._io import atomic_write


def test_a_failing_writer_leaves_the_previous_file_intact_and_no_temporary(tmp_path):
    path = tmp_path / "report.html"
    atomic_write(path, lambda tmp: tmp.write_text("good"))

    def crash(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(path, crash)
    assert path.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_temporary_file_keeps_the_suffix_so_writers_can_pick_the_format(tmp_path):
    seen = []
    atomic_write(tmp_path / "fig.svg", lambda tmp: (seen.append(tmp.suffix), tmp.write_text("x")))
    assert seen == [".svg"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_mode_of_the_users_umask(tmp_path, umask):
    import os
    import stat

    old = os.umask(umask)
    try:
        path = atomic_write(tmp_path / "report.html", lambda tmp: tmp.write_text("x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
