"""The database itself: engine and dialects, schema, migrations, locks, COPY, partitions, grants."""
