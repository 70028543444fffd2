"""The README's result tables are the committed results (a table edited by hand, or a study rerun without
the README following, fails here)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _committed(study: str) -> list[str]:
    return [ln for ln in (ROOT / "results" / study / "results.md").read_text().splitlines() if ln.startswith("|")]


@pytest.mark.parametrize("study", ["phone-12mp", "tf-fusion-12mp"])
def test_readme_tables_are_the_committed_results(study):
    readme = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {study}-table -->\n(.*?)\n<!-- /{study}-table -->", readme, re.S)
    assert m, f"README.md has no {study} table between its markers"
    assert m.group(1).splitlines() == _committed(study)


def test_readme_row_subsets_are_the_committed_rows():
    """``<!-- STUDY-rows: REGEX -->``: the committed table's header and the rows whose variant matches."""
    readme = (ROOT / "README.md").read_text()
    found = re.findall(r"<!-- ([\w-]+)-rows: (.*?) -->\n(.*?)\n<!-- /\1-rows -->", readme, re.S)
    assert found, "README.md has no row subset"
    for study, pattern, body in found:
        rows = _committed(study)
        want = rows[:2] + [r for r in rows[2:] if re.fullmatch(pattern, r.split("|")[1].strip())]
        assert body.splitlines() == want, study
