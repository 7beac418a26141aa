"""What the GEMM core's host side must know of it, without Amaranth: weight packing, registers, delays.

The driver and the cost model read these; the gateware (``gateware.py``,
``pe.py``) is built from the same declarations. Keeping them in a module that
imports no Amaranth is what lets the driver run on a board's own Python
(``sw/hardware/deploy/bundle.py`` bundles this module, the driver and the cost
model, not the gateware). How the PEs use the weight fields is described in
``pe.py``.
"""

from dataclasses import dataclass
from functools import cached_property
from math import ceil

import numpy as np

from ...errors import ParameterError
from ...hw.constants import REQUANT_LATENCY
from ...hw.registers import CONFIG_BASE, Register

__all__ = ["WeightLayout", "shift_grid", "shift_fields", "on_shift_grid", "MAX_EXPONENT", "RESULT_DELAY",
           "GEMM_CONFIG_REGISTERS", "PARAM_WORDS", "settle_delay", "readout_delay"]

#: Largest exponent a shift term encodes (3-bit field holding e + 1).
MAX_EXPONENT = 6
#: Cycles from a step's operands entering a PE to its sum being readable in the PE's result
#: register: the registered product (or sum of shifts), then the accumulation.
RESULT_DELAY = 3


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


GEMM_CONFIG_REGISTERS = (
    Register("K", CONFIG_BASE + 0x00, "rw", 16, doc="reduction depth of the job, 1..k_max"),
    Register("M_TILES", CONFIG_BASE + 0x04, "rw", 16, doc="row tiles in the A block"),
    Register("N_TILES", CONFIG_BASE + 0x08, "rw", 16, doc="column tiles streamed after the A block"),
    Register("OUTPUT_ZERO_POINT", CONFIG_BASE + 0x0C, "rw", 8, signed=True, doc="added after requantization"),
    Register("ACT_MIN", CONFIG_BASE + 0x10, "rw", 8, signed=True, doc="lower clamp of the int8 output"),
    Register("ACT_MAX", CONFIG_BASE + 0x14, "rw", 8, signed=True, doc="upper clamp of the int8 output"),
    Register("REQUANT_MODE", CONFIG_BASE + 0x18, "rw", 1, doc="0: double rounding (CONV_2D), 1: float (FC)"),
    Register("ROW_OFFSET", CONFIG_BASE + 0x1C, "rw", 9, signed=True,
             doc="times the sum of each output row's A operands, added before requantization (-B zero point)"),
)

#: Parameter words per column tile: bias, multiplier low, multiplier high, shifts.
PARAM_WORDS = 4


def settle_delay(cols):
    """Cycles from a tile's last step issuing to row 0 of its results entering the requantizer.

    Stage 1 (the operands out of the buffers), stage 2 (registered), ``cols -
    1`` hops to the last column, and the PE's ``RESULT_DELAY`` to its result register.
    """
    return cols + 1 + RESULT_DELAY


def readout_delay(rows):
    """Cycles from a tile's rows starting to enter the requantizer to the readout's start token.

    The readout loads row 0 the cycle after the token: no earlier than the step
    has crossed the array (``rows``) and row 0 has come out of the requantizer
    into the row buffer (``REQUANT_LATENCY + 1``).
    """
    return max(rows, REQUANT_LATENCY + 1)
