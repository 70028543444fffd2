"""The README's result tables are the committed results (a table edited by hand, or a study rerun without
the README following, fails here)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("study", ["phone-12mp", "ingraph-12mp"])
def test_readme_tables_are_the_committed_results(study):
    readme = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {study}-table -->\n(.*?)\n<!-- /{study}-table -->", readme, re.S)
    assert m, f"README.md has no {study} table between its markers"
    committed = [ln for ln in (ROOT / "results" / study / "results.md").read_text().splitlines() if ln.startswith("|")]
    assert m.group(1).splitlines() == committed
