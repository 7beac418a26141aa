"""Design-space exploration: search spaces, boards, the calibrated resource model, evaluation and search."""
