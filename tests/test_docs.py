"""The docs stay where a newcomer looks: a short README whose links resolve, and the map of
the code in docs/design.md matching the tree."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_short_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", doc.read_text()):
            if not re.match(r"[a-z]+:", target):
                assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)}: {target}"


def test_the_map_of_the_code_matches_the_tree():
    design = (ROOT / "docs" / "design.md").read_text()
    section = design.split("## Map of the code")[1].split("\n## ")[0]
    listed = re.findall(r"^(nnc/\S+\.(?:py|c))\s", section, re.M)
    assert len(listed) == len(set(listed))
    tree = sorted(str(p.relative_to(ROOT)) for pattern in ("*.py", "*.c")
                  for p in (ROOT / "nnc").rglob(pattern))
    assert sorted(listed) == tree
