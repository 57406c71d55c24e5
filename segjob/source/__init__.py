"""Where customer rows come from: a table or read-only query, purchase histories, CSV files."""
