"""Print the markdown of docs/papers.md with the stored verdicts (`sparsetorch papers report` writes it)."""

from __future__ import annotations

from sparsetorch.papers import list_papers, paper_statuses, papers_markdown, results_dir

if __name__ == "__main__":
    print(papers_markdown(statuses=paper_statuses(list_papers(), folder=results_dir())), end="")
