#!/usr/bin/env python3
"""Writes (or checks) fixtures/pages/excerpts.txt: the lines of the MicrosoftDocs/win32 pages
that the code cites as `<page>.md «words»`.

A citation is checked by core/tests/provenance.rs against this file, offline. This script is
how the file is made from a local clone of MicrosoftDocs/win32, and how it is re-checked:

    scripts/doc_excerpts.py --repo /path/to/win32.git            # rewrite the fixture
    scripts/doc_excerpts.py --repo /path/to/win32.git --check    # fail if it is stale

Only the page lines that hold a cited passage are kept, verbatim. Matching ignores markdown
emphasis, links, HTML tags and runs of white space (the same `normalise` as the Rust test).
"""
import argparse
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "pages" / "excerpts.txt"
PAGE_DIR = "desktop-src/HyperV_v2/"
COMMIT = "47e64c189dcb1c1a42c221380ccf0ec81cc82d4b"
CITE = re.compile(r"([a-z0-9][a-z0-9-]*\.md) «([^»]*)»")
COMMENT_JOIN = re.compile(r"\n[ \t]*//[/!]?[ \t]?")


def normalise(text):
    """Markdown-insensitive form: tags, link targets, emphasis and escapes dropped."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "<":
            j = text.find(">", i)
            if j != -1:
                out.append(" ")
                i = j + 1
                continue
        if c == "]" and i + 1 < n and text[i + 1] == "(":
            depth, j = 0, i + 1
            while j < n:
                if text[j] == "(":
                    depth += 1
                elif text[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            i = j + 1
            continue
        if c in "*\\[]`":
            i += 1
            continue
        out.append(c)
        i += 1
    return " ".join("".join(out).split())


def citations():
    """Every (page, words) cited in core/src and sim/src, comments joined across lines."""
    found = []
    for rs in sorted(list((ROOT / "core" / "src").rglob("*.rs")) + list((ROOT / "sim" / "src").rglob("*.rs"))):
        text = COMMENT_JOIN.sub(" ", rs.read_text()).replace('\\"', '"')
        for page, words in CITE.findall(text):
            found.append((page, words))
        # `<page>.md «words»` written as a pattern in prose is not a citation.
        if len(re.findall(r"(?<!>\.md )«", text)) != len(CITE.findall(text)):
            print(f"{rs}: a «…» that follows no <page>.md name", file=sys.stderr)
    return found


def page_text(repo, page):
    return subprocess.run(
        ["git", "--git-dir", repo, "show", f"{COMMIT}:{PAGE_DIR}{page}"],
        check=True, capture_output=True, text=True,
    ).stdout


def build(repo):
    by_page = {}
    for page, words in citations():
        by_page.setdefault(page, []).append(words)
    parts = [
        "// Lines of the MicrosoftDocs/win32 pages that the code cites as `<page>.md «words»`,",
        f"// copied verbatim from commit {COMMIT}.",
        "// Made by scripts/doc_excerpts.py; core/tests/provenance.rs finds every citation here.",
        "",
    ]
    missing = []
    for page in sorted(by_page):
        lines = page_text(repo, page).splitlines()
        # The page's own text, after its YAML front matter (whose description repeats it).
        body = 0
        if lines and lines[0] == "---":
            body = next((k + 1 for k in range(1, len(lines)) if lines[k] == "---"), 0)
        keep = set()
        for words in by_page[page]:
            want = normalise(words)
            hits = [k for k in range(body, len(lines)) if want in normalise(lines[k])]
            if not hits:
                missing.append(f"{page}: «{words}»")
            keep.update(hits[:1])
        parts.append(f"// source: {PAGE_DIR}{page}")
        parts.extend(lines[k] for k in sorted(keep))
        parts.append("")
    return "\n".join(parts), missing


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True, help="git dir of a MicrosoftDocs/win32 clone")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    text, missing = build(args.repo)
    for m in missing:
        print(f"not on its page: {m}", file=sys.stderr)
    if args.check:
        if FIXTURE.read_text() != text:
            print(f"{FIXTURE} is stale: rerun without --check", file=sys.stderr)
            return 1
    else:
        FIXTURE.write_text(text)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
