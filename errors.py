"""The one exception family of accelkit.

Messages say what was wrong, the value seen, and what is accepted.
"""

__all__ = [
    "AccelkitError", "ParameterError", "ToolchainError", "DeviceError",
    "SimulationTimeout", "UnsupportedLayer", "ModelError",
]


class AccelkitError(Exception):
    """Base class of every error accelkit raises on purpose."""


class ParameterError(AccelkitError, ValueError):
    """An accelerator or layer parameter is outside its declared space."""


class ToolchainError(AccelkitError):
    """A required external tool (Verilator, g++, Yosys, ...) is missing or failed."""


class DeviceError(AccelkitError):
    """A device (simulator or board) was used wrongly or reported a failure."""


class SimulationTimeout(DeviceError):
    """A run did not raise ``done`` within its cycle budget."""

    def __init__(self, message, *, budget=None, status=None):
        super().__init__(message)
        self.budget = budget
        self.status = status or {}


class UnsupportedLayer(AccelkitError):
    """The accelerator cannot run this layer (the caller falls back to the CPU)."""


class ModelError(AccelkitError):
    """A model file is malformed or cannot be run."""
