"""README's Python examples, run as written (issue 23): the library section stays true."""

import re
from pathlib import Path

import pytest
from conftest import make_text

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_the_readme_has_python_examples():
    assert len(python_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_a_readme_python_example_runs(index, tmp_path, monkeypatch, capsys):
    """Each block in a fresh directory holding the corpus/mynovel.txt it names (made-up text
    in the shape of a downloaded novel: GB18030, CRLF, indented)."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "mynovel.txt").write_bytes(make_text(40).encode("gb18030"))
    monkeypatch.chdir(tmp_path)
    code = compile(python_blocks()[index], f"README.md python block {index + 1}", "exec")
    exec(code, {})  # noqa: S102 -- the README is ours: running its examples is the test
    assert capsys.readouterr().out.strip()  # every example prints what it made
