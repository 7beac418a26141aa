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

from dataclasses import dataclass
from functools import cached_property
from math import ceil

import numpy as np
from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...errors import ParameterError

__all__ = ["shift_grid", "WeightLayout", "PEArray", "shift_fields", "on_shift_grid", "MAX_EXPONENT",
           "RESULT_DELAY"]

#: Largest exponent a shift term encodes (3-bit field holding e + 1).
MAX_EXPONENT = 6
#: Cycles from a step's operands entering a PE to its sum being readable in the PE's result
#: register: the registered product (or sum of shifts), then the accumulation.
RESULT_DELAY = 2


@dataclass(frozen=True)
class WeightLayout:
    """Column kinds of a ``cols``-wide array and the packing of its weight words on a ``data_width`` stream."""

    cols: int
    mult_cols: int
    terms: int
    data_width: int

    def __post_init__(self):
        if not 0 <= self.mult_cols <= self.cols:
            raise ParameterError(f"mult_cols must be in 0..cols ({self.cols}), not {self.mult_cols}")
        if self.mult_cols < self.cols and self.terms not in (1, 2):
            raise ParameterError(f"terms (power-of-two terms per shift-PE weight) must be 1 or 2, not {self.terms}")

    @classmethod
    def from_params(cls, params):
        return cls(params["cols"], params.get("mult_cols", params["cols"]), params.get("terms", 1),
                   params["data_width"])

    @property
    def all_multipliers(self):
        return self.mult_cols == self.cols

    def bits(self, column):
        return 8 if column < self.mult_cols else 4 * self.terms

    @cached_property
    def offsets(self):
        offsets, at = [], 0
        for j in range(self.cols):
            offsets.append(at)
            at += self.bits(j)
        return offsets

    @cached_property
    def word_bits(self):
        return sum(self.bits(j) for j in range(self.cols))

    @property
    def words_per_row(self):
        """Weight words per B memory row (and per beat): a power of two, 1 when a word needs a beat or more."""
        fit = self.data_width // self.word_bits
        return 1 if fit <= 1 else 1 << (fit.bit_length() - 1)

    @property
    def row_bits(self):
        return self.words_per_row * self.word_bits

    @property
    def beats_per_row(self):
        return ceil(self.row_bits / self.data_width)

    def b_rows(self, k):
        return ceil(k / self.words_per_row)

    def b_beats(self, k):
        """Stream beats of one column tile's K weight words."""
        return self.b_rows(k) * self.beats_per_row

    def encode(self, b_tiles):
        """int8 weights ``[tiles, K, cols]`` to the stream bytes ``[tiles, b_beats(K) * beat]``.

        Raises :class:`ParameterError` when a shift column holds a weight off its grid.
        """
        tiles, k, cols = b_tiles.shape
        beat = self.data_width // 8
        if self.all_multipliers and self.words_per_row == 1 and self.word_bits % 8 == 0:
            out = np.zeros((tiles, k, self.beats_per_row * beat), dtype=np.uint8)
            out[..., :cols] = b_tiles.view(np.uint8)
            return out.reshape(tiles, -1)
        fields = np.empty(b_tiles.shape, dtype=np.uint8)
        fields[..., :self.mult_cols] = b_tiles[..., :self.mult_cols].view(np.uint8)
        fields[..., self.mult_cols:] = shift_fields(b_tiles[..., self.mult_cols:], self.terms)
        bits = np.unpackbits(fields[..., None], axis=-1, bitorder="little")
        word = np.concatenate([bits[:, :, j, :self.bits(j)] for j in range(cols)], axis=-1)
        rows, per_row = self.b_rows(k), self.words_per_row
        grouped = np.zeros((tiles, rows * per_row, self.word_bits), dtype=np.uint8)
        grouped[:, :k] = word
        row = np.zeros((tiles, rows, self.beats_per_row * self.data_width), dtype=np.uint8)
        row[..., :self.row_bits] = grouped.reshape(tiles, rows, self.row_bits)
        return np.packbits(row, axis=-1, bitorder="little").reshape(tiles, -1)


def _terms(values):
    """(sign, larger exponent or -1, smaller exponent or -1, remainder) of int8 values, elementwise."""
    values = np.asarray(values, dtype=np.int16)
    magnitude = np.abs(values)
    high = np.frexp(magnitude)[1] - 1                     # -1 for zero
    rest = magnitude - np.where(high >= 0, 1 << np.maximum(high, 0), 0)
    low = np.frexp(rest)[1] - 1
    remainder = rest - np.where(low >= 0, 1 << np.maximum(low, 0), 0)
    return values < 0, high, low, remainder


def on_shift_grid(values, terms):
    """Elementwise: is each int8 value ``sign * (2^e1 [+ 2^e2])`` with at most ``terms`` terms, e <= 6?"""
    _, high, low, remainder = _terms(values)
    ok = (remainder == 0) & (high <= MAX_EXPONENT)
    return ok & (low < 0) if terms == 1 else ok


def shift_grid(terms):
    """Every int8 value on the ``terms``-term power-of-two grid, ascending (int64)."""
    values = np.arange(-127, 128, dtype=np.int64)
    return values[on_shift_grid(values, terms)]


def shift_fields(values, terms):
    """The ``terms``-nibble shift-PE field of each int8 value (uint8); off-grid values raise ParameterError."""
    sign, high, low, _ = _terms(values)
    bad = ~on_shift_grid(values, terms)
    if bad.any():
        example = int(np.asarray(values).reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]])
        raise ParameterError(f"weight {example} is not on the {terms}-term power-of-two grid "
                             f"(sign x sum of {terms} power(s) of two, exponents 0..{MAX_EXPONENT})")

    def nibble(exponent):
        return np.where(exponent >= 0, (sign.astype(np.int16) << 3) | (exponent + 1), 0)

    return (nibble(high) | (nibble(low) << 4 if terms == 2 else 0)).astype(np.uint8)


class PEArray(wiring.Component):
    """The ``rows x cols`` output-stationary PE grid (a separate module, so it can be synthesized alone).

    Row ``i`` receives an int8 operand and its flags (valid, first, last step of
    a tile), column ``j`` its weight field, both already skewed; operands move one
    PE per cycle, A to the right and B down. ``results[i][j]`` holds the sum of
    the last finished tile, ``RESULT_DELAY`` cycles after the tile's last step
    entered the PE.

    ``stuck`` names one PE (row, column) whose accumulator never adds: a fault injected on
    purpose for mutation testing, never a design parameter (see ``faults.py``).
    """

    def __init__(self, rows, layout: WeightLayout, stuck=None):
        self.rows, self.layout, self.stuck = rows, layout, stuck
        cols = layout.cols
        super().__init__({
            "a": In(signed(8)).array(rows),
            "flags": In(3).array(rows),
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
        f_pass = [[None] * cols for _ in range(rows)]
        for i in range(rows):
            for j in range(cols):
                a = self.a[i] if j == 0 else a_pass[i][j - 1]
                flags = self.flags[i] if j == 0 else f_pass[i][j - 1]
                b = self.b[j] if i == 0 else b_pass[i - 1][j]
                a_pass[i][j] = Signal(signed(8), name=f"pe{i}_{j}_a")
                b_pass[i][j] = Signal(self.layout.bits(j), name=f"pe{i}_{j}_b")
                f_pass[i][j] = Signal(3, name=f"pe{i}_{j}_flags")
                # Accumulator and result registers need no reset: a tile's first step
                # overwrites the accumulator, and the readout only reads results that a
                # tile's last step wrote. Without one, a verilated model computes their
                # next values only when their enables are set, not in every evaluation.
                acc = Signal(signed(32), name=f"pe{i}_{j}_acc", reset_less=True)
                result = Signal(signed(32), name=f"pe{i}_{j}_result", reset_less=True)
                m.d.comb += self.results[i][j].eq(result)
                # The product is registered before it is accumulated: a multiplier
                # block and a 32-bit carry chain in one cycle, with the routing to and
                # from the DSP column, held the array to 66 MHz on the ECP5.
                product = Signal(signed(16), name=f"pe{i}_{j}_product", reset_less=True)
                product_flags = Signal(3, name=f"pe{i}_{j}_product_flags")
                total = Signal(signed(32), name=f"pe{i}_{j}_sum")
                m.d.comb += total.eq(Mux(product_flags[1], 0, acc) + product)
                m.d.sync += [a_pass[i][j].eq(a), b_pass[i][j].eq(b), f_pass[i][j].eq(flags),
                             product_flags.eq(flags)]
                with m.If(flags[0]):
                    m.d.sync += product.eq(self.contribution(m, i, j, a, b))
                with m.If(product_flags[0]):
                    m.d.sync += acc.eq(total)
                    with m.If(product_flags[2]):
                        m.d.sync += result.eq(total)
        return m
