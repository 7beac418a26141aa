"""Hardware flows: synthesis-based resource estimates (Yosys), and later timing and deployment."""
