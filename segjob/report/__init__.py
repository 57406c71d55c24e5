"""The HTML report of a run: what it chose, its segments and a sample of its customers."""
