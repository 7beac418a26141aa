"""Processing elements of the systolic array, and how their weights are streamed.

A column of the array is one output channel. Each column has one kind of PE:

* a *multiplier* column takes int8 weights and adds ``a * w``;
* a *shift* column takes weights on a power-of-two grid, ``w = sign * (2^e1
  [+ 2^e2])`` with exponents 0..6, and adds ``a`` shifted by each exponent: no
  multiplier. Each term is a nibble, 0 for none, else ``sign << 3 | (e + 1)``;
  ``terms`` nibbles per weight (1: PoT, 2: APoT / the power-of-two rows of MSQ),
  the term with the larger exponent in the low nibble.

The first ``mult_cols`` columns multiply, the rest shift. The int8 GEMM is the
all-multiplier case. :class:`WeightLayout` says how a row of weights (one
reduction step of a column tile) is packed into the input stream: the columns'
fields back to back, and several such words to a beat when they fit, so
narrow shift fields really move fewer bytes.
"""

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...hw.dsp import registered_product
from .layout import MAX_EXPONENT, RESULT_DELAY, WeightLayout, on_shift_grid, shift_fields, shift_grid

__all__ = ["shift_grid", "WeightLayout", "PEArray", "shift_fields", "on_shift_grid", "MAX_EXPONENT",
           "RESULT_DELAY"]


class PEArray(wiring.Component):
    """The ``rows x cols`` output-stationary PE grid (a separate module, so it can be synthesized alone).

    Row ``i`` receives an int8 operand, column ``j`` its weight field, both
    already skewed (row ``i`` and column ``j`` by ``i`` and ``j`` cycles);
    operands move one PE per cycle, A to the right and B down. ``flags`` are the
    step's flags (valid, first, last step of a tile), not skewed: they reach PE
    ``(i, j)`` with its operands, ``i + j`` cycles later, through one delay
    line shared by each anti-diagonal of the array (every PE of a diagonal sees
    the same flags in the same cycle, so per-PE copies would be identical
    registers). ``results[i][j]`` holds the sum of the last finished tile,
    ``RESULT_DELAY`` cycles after the tile's last step entered the PE.

    ``stuck`` names one PE (row, column) whose accumulator never adds: a fault injected on
    purpose for mutation testing, never a design parameter (see ``faults.py``).
    """

    def __init__(self, rows, layout: WeightLayout, stuck=None):
        self.rows, self.layout, self.stuck = rows, layout, stuck
        cols = layout.cols
        super().__init__({
            "a": In(signed(8)).array(rows),
            "flags": In(3),
            "b": In(unsigned(8)).array(cols),
            "results": Out(signed(32)).array(rows, cols),
        })

    def contribution(self, m, i, j, a, b):
        """What PE (i, j) adds for operand ``a`` and weight field ``b``: the product, or the sum of shifts."""
        if (i, j) == self.stuck:
            return Const(0, signed(16))
        if j < self.layout.mult_cols:
            return a * b[:8].as_signed()
        # A shift PE: the terms share the weight's sign, so their magnitudes (a * 2^e, a shift,
        # no multiplier) are summed first and negated once.
        magnitude = 0
        for t in range(self.layout.terms):
            code = b[4 * t:4 * t + 3]            # e + 1, 0 for no term
            shifted = Signal(signed(15), name=f"pe{i}_{j}_shift{t}")
            m.d.comb += shifted.eq(Mux(code == 0, 0, a << code))
            magnitude = magnitude + (shifted >> 1)
        total = Signal(signed(16), name=f"pe{i}_{j}_terms")
        m.d.comb += total.eq(magnitude)
        return Mux(b[3], -total, total)

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.layout.cols
        a_pass = [[None] * cols for _ in range(rows)]
        b_pass = [[None] * cols for _ in range(rows)]
        # diagonal[d]: the flags of the PEs (i, j) with i + j = d as they take their operands;
        # diagonal[d + 1] is also the flags of their product registers, loaded from the
        # operands a cycle later, and diagonal[d + 2] those of their accumulators.
        diagonal = [self.flags]
        for d in range(rows + cols):
            stage = Signal(3, name=f"diagonal{d}_flags")
            m.d.sync += stage.eq(diagonal[-1])
            diagonal.append(stage)
        for i in range(rows):
            for j in range(cols):
                a = self.a[i] if j == 0 else a_pass[i][j - 1]
                b = self.b[j] if i == 0 else b_pass[i - 1][j]
                # The operands need no reset: a PE uses them only with a valid step. They are
                # loaded in every cycle: loading them only with a valid step would make a
                # verilated model copy each through a temporary in every evaluation, since each
                # is read by its neighbour in the same update.
                a_pass[i][j] = Signal(signed(8), name=f"pe{i}_{j}_a", reset_less=True)
                b_pass[i][j] = Signal(self.layout.bits(j), name=f"pe{i}_{j}_b", reset_less=True)
                m.d.sync += [a_pass[i][j].eq(a), b_pass[i][j].eq(b)]
                # Accumulator and result registers need no reset: a tile's first step
                # overwrites the accumulator, and the readout only reads results that a
                # tile's last step wrote. Without one, a verilated model computes their
                # next values only when their enables are set, not in every evaluation.
                acc = Signal(signed(32), name=f"pe{i}_{j}_acc", reset_less=True)
                result = Signal(signed(32), name=f"pe{i}_{j}_result", reset_less=True)
                m.d.comb += self.results[i][j].eq(result)
                # The product is formed from the PE's own operand registers and registered
                # before it is accumulated. On an ECP5 the operand and product registers
                # are the multiplier block's own (hw/dsp.py): with fabric registers, the
                # routing to and from the DSP column held the array to 66 MHz (product
                # unregistered) and then 136 MHz (registered in the fabric).
                product_flags, acc_flags = diagonal[i + j + 1], diagonal[i + j + 2]
                if j < self.layout.mult_cols and (i, j) != self.stuck:
                    product = registered_product(m, platform, f"pe{i}_{j}", a=a, b=b[:8].as_signed(),
                                                 a_held=a_pass[i][j], b_held=b_pass[i][j][:8].as_signed(),
                                                 p_enable=product_flags[0])
                else:
                    # Loaded in every cycle (the accumulator takes it only a cycle after a valid
                    # step), so the diagonal's flags, fanning out to a whole anti-diagonal, are
                    # not in front of the shift logic: that was potacc's critical path (101.7 MHz).
                    product = Signal(signed(16), name=f"pe{i}_{j}_product", reset_less=True)
                    m.d.sync += product.eq(self.contribution(m, i, j, a_pass[i][j], b_pass[i][j]))
                total = Signal(signed(32), name=f"pe{i}_{j}_sum")
                m.d.comb += total.eq(Mux(acc_flags[1], 0, acc) + product)
                with m.If(acc_flags[0]):
                    m.d.sync += acc.eq(total)
                    with m.If(acc_flags[2]):
                        m.d.sync += result.eq(total)
        return m
