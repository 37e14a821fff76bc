"""Performance scripts: each prints ratios against a baseline measured in the same run (see the README)."""
