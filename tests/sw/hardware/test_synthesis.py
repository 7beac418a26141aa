"""Yosys resource estimates of a tiny GEMM design (synthesis results are cached by content hash)."""

from accelkit.accelerators.gemm import GemmAccelerator
from accelkit.sw.commands.resources import accelerator_resources

TINY = dict(rows=2, cols=3, data_width=16, k_max=16, a_depth=16)


def test_gemm_resources_count_one_multiplier_per_pe():
    estimate = accelerator_resources(GemmAccelerator(**TINY))
    # Multipliers before mapping: one per PE, eight per column for requantization
    # (the 32x32 product shared by both rounding modes and the 32x21 one for the
    # float mantissa's high part, each as four 16-bit partial products), one for
    # the A block size (M_TILES x K), two for the per-row zero-point term (ROW_OFFSET x a row's operand
    # sum, its low bits and its top 9 bits apart, each within one multiplier block).
    assert estimate.mul_cells_before_mapping == 2 * 3 + 3 * 8 + 1 + 2
    # Each int8 PE product maps to one DSP48E1, each column's requantizer to eight, the row term to two.
    assert estimate.dsp == 2 * 3 + 3 * 8 + 2
    assert estimate.lut > 0 and estimate.ff > 0
    # The row buffer (rows x 8*cols bits, read asynchronously) is LUT RAM: counted apart, four LUTs per RAM32M.
    assert estimate.cells.get("RAM32M", 0) > 0
    assert estimate.lut_ram == 4 * estimate.cells["RAM32M"] + sum(
        n for name, n in estimate.cells.items() if name.startswith("SRL"))
    assert estimate.lut_total == estimate.lut + estimate.lut_ram
    # ltp found a longest combinational path (it reports -1 when it sees cells without their wires).
    assert estimate.logic_depth is not None and 2 <= estimate.logic_depth < 200
