"""Reusable gateware: register declarations, the AXI4-Lite register block and the accelerator shell.

Nothing here imports other accelkit subpackages; ``driver`` reads the register
declarations from here so the host never retypes an offset.
"""
