"""Score runs: new rows against a stored model, from Python or as SQL in the database."""
