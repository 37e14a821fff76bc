"""Print the markdown of docs/papers.md: ``python -m sparsetorch.papers > docs/papers.md``."""

from __future__ import annotations

from sparsetorch.papers import papers_markdown

if __name__ == "__main__":
    print(papers_markdown(), end="")
