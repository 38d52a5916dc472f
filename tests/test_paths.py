from pathlib import Path

import pytest

from helpers import paths
from helpers.paths import PROJECT_ROOT, data_dir, display_path, prepare_dir, project_root, runs_dir


def test_defaults_are_under_the_project_root(monkeypatch):
    monkeypatch.delenv("COURSE_RUNS_DIR", raising=False)  # the suite sets them (root conftest.py)
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    assert (PROJECT_ROOT / "pyproject.toml").exists()
    assert runs_dir("", "03_train") == PROJECT_ROOT / "runs" / "03_train"
    assert data_dir("") == PROJECT_ROOT / "data"


def test_environment_variables_replace_the_default_folders_but_not_a_given_one(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_RUNS_DIR", str(tmp_path / "all-runs"))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "all-data"))
    assert runs_dir("", "03_train") == tmp_path / "all-runs" / "03_train"
    assert data_dir("") == tmp_path / "all-data"
    assert runs_dir("mine", "03_train") == PROJECT_ROOT / "mine"


def test_the_suite_writes_notebook_defaults_to_a_temporary_folder():
    # nbval runs every notebook with RUNS_DIR = "" and DATA_DIR = "": never into the checkout
    assert not runs_dir("", "03_train").is_relative_to(PROJECT_ROOT)
    assert not data_dir("").is_relative_to(PROJECT_ROOT)


def test_relative_paths_are_taken_from_the_project_not_the_kernels_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT / "notebooks")  # where a kernel starts under make run
    assert runs_dir("out", "03_train") == PROJECT_ROOT / "out"
    assert data_dir("d") == PROJECT_ROOT / "d"
    assert runs_dir(str(tmp_path / "abs"), "03_train") == tmp_path / "abs"
    assert runs_dir("~/x", "03_train") == Path.home() / "x"


def test_the_scripts_take_relative_paths_from_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runs_dir("out", "train", base=Path.cwd()) == tmp_path / "out"
    assert data_dir("d", base=Path.cwd()) == tmp_path / "d"


def test_without_an_editable_install_the_course_is_found_from_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "site-packages" / "helpers" / "paths.py"))
    monkeypatch.chdir(PROJECT_ROOT / "notebooks")
    assert project_root.__wrapped__() == PROJECT_ROOT


@pytest.fixture
def fresh_project_root():
    """project_root() looked up anew in the test, and again after it (its answer is cached)."""
    project_root.cache_clear()
    yield
    project_root.cache_clear()


def test_outside_the_course_the_defaults_go_under_the_current_folder(tmp_path, monkeypatch, fresh_project_root):
    """A wheel install and a notebook copied into an empty folder: runs/ and data/ go next to it."""
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "site-packages" / "helpers" / "paths.py"))
    monkeypatch.delenv("COURSE_RUNS_DIR", raising=False)  # the suite sets them (root conftest.py)
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    notebook_folder = tmp_path / "my notebooks"
    notebook_folder.mkdir()
    monkeypatch.chdir(notebook_folder)
    assert project_root() == notebook_folder
    assert runs_dir("", "03_train") == notebook_folder / "runs" / "03_train"
    assert data_dir("") == notebook_folder / "data"
    assert runs_dir("out", "03_train") == notebook_folder / "out"
    assert display_path(notebook_folder / "runs" / "03_train") == "runs/03_train"
    monkeypatch.chdir(tmp_path)  # the answer stays the same for the rest of the kernel's life
    assert runs_dir("", "03_train") == notebook_folder / "runs" / "03_train"


def test_prepare_dir_creates_folders(tmp_path):
    target = tmp_path / "a" / "b"
    assert prepare_dir(target) == target and target.is_dir()
    assert list(target.iterdir()) == []  # the write check leaves nothing behind


def test_prepare_dir_under_a_file_gives_one_clear_message(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(PermissionError) as info:
        prepare_dir(blocker / "runs")
    message = str(info.value)
    assert message.startswith(f"cannot write to {blocker / 'runs'}")
    assert "set RUNS_DIR to a folder you can write to" in message


def test_prepare_dir_names_the_parameter(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(PermissionError, match="set DATA_DIR"):
        prepare_dir(Path(tmp_path / "f" / "data"), parameter="DATA_DIR")


def test_display_path_is_short_and_free_of_machine_details(tmp_path):
    from helpers.paths import display_path

    assert display_path(PROJECT_ROOT / "runs" / "05_experiment") == "runs/05_experiment"
    assert display_path(Path.home() / ".cache" / "torch") == "~/.cache/torch"
    outside = Path("/") / "srv" / "data"
    assert display_path(outside) == str(outside)
