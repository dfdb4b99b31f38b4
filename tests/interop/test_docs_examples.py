"""The README's Python examples are the files CI runs: every ```python block that follows a
`<!-- example: PATH -->` marker in README.md, docs/clients.md or docs/pytest.md must equal PATH, and
docs/clients.md must quote both examples."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKED = re.compile(r"<!-- example: (\S+) -->\n```(?:python|rust)\n(.*?)```", re.S)


def quoted(doc):
    return {path: block for path, block in MARKED.findall(doc.read_text())} if doc.is_file() else {}


def test_quoted_examples_are_the_example_files():
    found = {}
    for doc in (ROOT / "README.md", ROOT / "docs" / "clients.md", ROOT / "docs" / "pytest.md"):
        for path, block in quoted(doc).items():
            assert block == (ROOT / path).read_text(), f"{doc.name} quotes an outdated {path}"
            found.setdefault(path, doc.name)
    assert set(quoted(ROOT / "docs" / "clients.md")) == {
        "tests/interop/examples/pypsrp_failback.py", "tests/interop/examples/pywinrm_failback.py"}
