"""Faults the GEMM accelerator can be given on purpose, to learn which of the project's checks catch what.

Each is switched on by ``accelerator.with_faults(name)`` (never a declared parameter, so no search or
command line picks one), never by editing a source file. Most change the host side of the design: what
the driver sends or reads back, or what the cost model counts. ``stuck_pe`` changes the gateware, through
an elaboration argument of the core: it is a separate build, and ``GATEWARE_FAULTS`` puts it into the
design's content hash so it never shares a cached build with the fault-free design.
"""

import dataclasses

import numpy as np

__all__ = ["FAULTS", "GATEWARE_FAULTS", "core_faults", "faulty_gemm", "faulty_output", "FaultyDevice"]

FAULTS = {
    "requant_shift": "requantization shift off by one: the driver sends each column's multiplier for twice the scale",
    "zero_point_dropped": "the input zero point is not folded into the bias",
    "tiles_swapped": "the outputs of the first two column tiles are swapped when the driver unpacks them",
    "dma_beat_dropped": "the last beat of every job's input stream is not sent",
    "cost_term_removed": "the cost model forgets the readout of each job's last tile (rows + cols cycles)",
    "stuck_pe": "the PE in the middle of the array (row rows//2, column cols//2) never accumulates (gateware)",
}

#: faults built into the gateware (the rest act on the host side of an unchanged build)
GATEWARE_FAULTS = frozenset({"stuck_pe"})


def core_faults(faults, params):
    """Elaboration arguments of the GEMM core for the gateware faults among ``faults``."""
    return {"stuck_pe": (params["rows"] // 2, params["cols"] // 2)} if "stuck_pe" in faults else {}


def faulty_gemm(gemm, faults, layer):
    """The GEMM the faulty driver programs."""
    if "requant_shift" in faults:
        gemm = dataclasses.replace(gemm, scale=gemm.scale * 2.0)
    if "zero_point_dropped" in faults and getattr(layer, "input_zero_point", 0):
        folded = int(layer.input_zero_point) * gemm.b.astype(np.int64).sum(axis=0)
        gemm = dataclasses.replace(gemm, bias=gemm.bias + folded)
    return gemm


def faulty_output(out, faults, cols):
    if "tiles_swapped" in faults and out.shape[1] >= 2 * cols:
        out = out.copy()
        out[:, :cols], out[:, cols:2 * cols] = out[:, cols:2 * cols].copy(), out[:, :cols].copy()
    return out


class FaultyDevice:
    """A device whose input stream loses its last beat on every job (everything else passes through)."""

    def __init__(self, device):
        self._device = device

    def __getattr__(self, name):
        return getattr(self._device, name)

    def dma_send(self, data):
        data = np.asarray(data, dtype=np.uint8)
        beat = self._device.beat_bytes
        self._device.dma_send(data[:-beat] if data.size > beat else data)
