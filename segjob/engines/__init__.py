"""How a fit run's rows move: read a sample, assign and aggregate every row, write assignments.

- `base`: the steps the pipeline calls (`Engine`) and what they exchange (`Sample`, `Fitted`, `Assigned`).
- `local`: segjob's own engine, in memory (`InMemory`) or streaming (`Streaming`), picked by `engine_for`.

An engine for another runtime is a sibling module implementing `base.Engine`.
"""
