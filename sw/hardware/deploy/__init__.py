"""Deployment: Vivado export for PYNQ boards, the synthetic hardware handoff, the open ECP5 build."""
