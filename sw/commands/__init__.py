"""The `accelkit` command line: one module per command (`main` builds the parser and dispatches)."""
