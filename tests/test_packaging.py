"""What `pip install .` puts in the package: every file of the shipped models (a regular
install must load them as an editable one does)."""

import fnmatch
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("package", ["wordlstm.default_model", "wordlstm.base_model",
                                     "wordlstm.dinos_model", "wordlstm.tang_model"])
def test_every_shipped_model_file_is_package_data(package):
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folder = ROOT / config["package-dir"][package]
    patterns = config["package-data"][package]
    files = [p.name for p in folder.iterdir() if p.is_file()]
    assert "config.json" in files and "README.md" in files
    missing = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert not missing, f"{package}: {missing} would be left out of a regular install"


def test_the_page_is_a_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "wordlstm.static" in config["packages"]
