"""A PYNQ board made of PYNQ's own host classes and an RTL simulation (for tests and benchmarks).

:func:`open_simulated_board` exports the design's block design for a board,
writes the synthetic handoff for its address map, opens the accelerator's
Verilator simulation behind a fake ``pynq.Device`` (``sim/pynq_fake.py``) and
returns a :class:`~accelkit.driver.pynq_device.PynqDevice` on the overlay PYNQ
loads from it: the driver path of a board, minus the board.
"""

from ....driver.pynq_device import PynqDevice
from ...execution.devices import open_device
from .block_design import block_design
from .boards import get_board
from .hwh import write_synthetic_overlay

__all__ = ["open_simulated_board"]


def open_simulated_board(accelerator, workdir, *, board="pynq-z1", clock_mhz=100.0, progress=None):
    """(PynqDevice, fake pynq.Device) for ``accelerator`` on a simulated ``board``; needs ``pynq`` importable."""
    from ....sim.pynq_fake import simulated_pynq_device
    spec = get_board(board)
    design = block_design(spec, top=accelerator.top_name, data_width=accelerator.params.get("data_width", 64),
                          clock_mhz=clock_mhz)
    bitfile = write_synthetic_overlay(design, workdir)
    simulator = open_device(accelerator, "verilator", progress=progress)
    fake = simulated_pynq_device(simulator, accel_base=spec.accel_base, dma_base=spec.dma_base)
    device = PynqDevice.open(bitfile, accelerator.register_map(), device=fake, download=False,
                             clock_mhz=design.clock_mhz)
    return device, fake
