"""How a fit run's rows move: read a sample, assign and aggregate every row, write assignments."""
