"""What a run writes and what is read back: run rows, the atomic publish, stable segment ids, history."""
