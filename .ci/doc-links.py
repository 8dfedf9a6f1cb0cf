#!/usr/bin/env python3
"""Checks the documentation holds together: every relative link in the
README, docs/, ARCHITECTURE.md and SECURITY.md names a file that exists and,
with `#anchor`, a heading there; and the README stays the short front door
(under 400 lines), the rest living in docs/.

Usage: doc-links.py   (from the repository root). Exit status 1 lists each
broken link as `file: target`.
"""

import glob
import os
import re
import sys

README_MAX_LINES = 400


def slug(heading):
    """The anchor a heading gets (GitHub's rule for the characters used here)."""
    heading = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return heading.replace(" ", "-")


def main():
    files = ["README.md", "ARCHITECTURE.md", "SECURITY.md"] + sorted(glob.glob("docs/*.md"))
    anchors = {}
    for name in files:
        with open(name) as text:
            anchors[name] = {slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", text.read(), re.M)}
    broken = []
    for name in files:
        with open(name) as text:
            body = text.read()
        # Links inside code blocks are code, not links.
        body = re.sub(r"```.*?```", "", body, flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", body):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = os.path.normpath(os.path.join(os.path.dirname(name), path)) if path else name
            if not os.path.exists(linked):
                broken.append(f"{name}: {target} (no such file)")
            elif anchor and linked in anchors and anchor not in anchors[linked]:
                broken.append(f"{name}: {target} (no such heading)")
    with open("README.md") as text:
        lines = sum(1 for _ in text)
    if lines >= README_MAX_LINES:
        broken.append(f"README.md: {lines} lines; keep it under {README_MAX_LINES} and move detail to docs/")
    for problem in broken:
        print(problem)
    if broken:
        return 1
    print(f"docs: {len(files)} files, every link resolves; README.md {lines} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
