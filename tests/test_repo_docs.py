"""The repository documents itself: no citation of files outside it, every link to
docs/paper.md lands on a heading, docs/architecture.md places every module, and library
code logs instead of printing."""
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "toolkit" / "bisep"

# Notes kept next to a checkout, not in it: a reader of the repository cannot follow these.
OUTSIDE = re.compile(r"paper[- ]notes|notes section|pitfall P\d|\bshared/|/work/|"
                     r"official-code-audit|prototype\.md", re.IGNORECASE)
PAPER_LINK = re.compile(r"(?:docs/)?paper\.md#([A-Za-z0-9_-]+)")


def tracked_text_files():
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                               check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    for name in filter(None, names):
        path = REPO / name
        if not path.is_file() or path.stat().st_size > 1_000_000:
            continue
        data = path.read_bytes()
        if b"\0" not in data:
            yield name, data.decode("utf-8", errors="replace")


def outside_references():
    here = Path(__file__).relative_to(REPO).as_posix()
    return {(name, number, line.strip())
            for name, text in tracked_text_files() if name != here
            for number, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)}


def test_no_file_cites_notes_outside_the_repository():
    found = sorted(ref for ref in outside_references())
    assert not found, "cite docs/paper.md#<anchor> instead:\n" + "\n".join(
        f"{name}:{number}: {line}" for name, number, line in found)


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_to_docs_paper_md_names_a_heading():
    text = (REPO / "docs" / "paper.md").read_text()
    anchors = {github_anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}
    links = [(name, anchor) for name, body in tracked_text_files()
             for anchor in PAPER_LINK.findall(body)]
    links += [("docs/paper.md", a) for a in re.findall(r"\]\(#([A-Za-z0-9_-]+)\)", text)]
    assert len(links) > 50  # the code, configs and docs do cite it
    assert not [link for link in links if link[1] not in anchors]


def test_github_anchor():
    assert github_anchor("P7: SDR, not SDRi") == "p7-sdr-not-sdri"
    assert github_anchor("L_CNT") == "l_cnt"


def test_architecture_places_every_module():
    text = (REPO / "docs" / "architecture.md").read_text()
    modules = sorted(p.relative_to(PACKAGE.parent).with_suffix("").as_posix()
                     for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")
    assert not [m for m in modules if f"`{m.replace('/', '.')}`" not in text and
                f"`{m}.py`" not in text]


def test_library_code_logs_instead_of_printing():
    # cli/ prints by design; the registry's BISEP_TRACE_PLUGINS trace is output the user
    # asked for, on stderr even when no command runs.
    allowed = {"registry.py"}
    printing = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
                if p.parent.name != "cli" and p.name not in allowed
                and re.search(r"(?<![\w.])print\(", p.read_text())]
    assert not printing
