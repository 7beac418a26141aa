"""Checks of accelerators against their own models: conformance sweeps (golden vs each backend, cost model vs
simulated cycles), cost-model fidelity on the zoo, and seeded random layers."""
