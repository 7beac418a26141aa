"""llama.cpp (ggml) block formats as declarative specs.

A block of ``block`` elements is a packed byte struct (``fields``, in file
order). Its integer codes are described, not coded: every element code, sub-block
scale and sub-block min is assembled from :class:`Bits` pieces (a run of
consecutive bytes of one field, a bit range of each byte, landing on a run of
consecutive codes at a bit position). One generic unpacker and one generic packer
(``codec.py``) read these specs, so a new format is a new :class:`BlockFormat`
value, not new code.

The value of element ``i`` of sub-block ``j`` is, in float32 and in this order
(ggml's ``dequantize_row_*``)::

    (d * scale_j) * q_i - dmin * min_j        q_i = code_i - offset

where formats without sub-block scales use ``d * q_i`` and formats without mins
drop the second term.
"""

from dataclasses import dataclass, field

import numpy as np
from gguf import GGMLQuantizationType

from ...errors import ParameterError

__all__ = ["Bits", "Codes", "BlockFormat", "interleaved", "FORMATS", "get_format", "format_of_type",
           "WEIGHT_FORMATS", "ACTIVATION_FORMATS"]


@dataclass(frozen=True)
class Bits:
    """``count`` codes starting at ``first`` take bits ``[shift, shift + width)`` of ``count`` consecutive
    bytes of ``field`` starting at byte ``byte``, placed at bit ``to_bit`` of the code."""

    field: str
    byte: int
    count: int
    shift: int
    width: int
    first: int
    to_bit: int = 0


def interleaved(field, nbytes, bits, stride, *, to_bit=0, first=0):
    """The pieces of ggml's usual layout: the field is cut into runs of ``stride`` bytes; run ``r`` holds
    ``8 // bits`` groups of ``stride`` consecutive codes, group ``s`` in bits ``[s * bits, (s + 1) * bits)``.

    (Q4_0: codes j and j + 16 share byte j; Q2_K: byte l of each 32-byte run holds codes l, l + 32, l + 64,
    l + 96 of its 128; Q3_K's hmask holds bit 2 of code l + 32 s in bit s of byte l.)
    """
    per_byte = 8 // bits
    return tuple(Bits(field, r * stride, stride, s * bits, bits, first + r * stride * per_byte + s * stride, to_bit)
                 for r in range(nbytes // stride) for s in range(per_byte))


@dataclass(frozen=True)
class Codes:
    """Unsigned codes assembled from ``pieces``; the value is ``code - offset`` (``signed``: two's complement
    of ``bits`` bits instead)."""

    count: int
    bits: int
    pieces: tuple
    offset: int = 0
    signed: bool = False

    def value_range(self):
        """(lowest, highest) value a code can stand for."""
        if self.signed:
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return -self.offset, (1 << self.bits) - 1 - self.offset


@dataclass(frozen=True)
class BlockFormat:
    """One ggml block format.

    ``fields``: (name, byte count) in file order; ``d``/``dmin``: the names of the float super-scales and
    their numpy dtype (``d_dtype``); ``quants``: element codes; ``scales``/``mins``: sub-block codes (None:
    one scale per block, no min); ``activation``: the format ggml quantizes the other MatMul operand to;
    ``sums``: a field holding per-sub-block sums of the codes (Q8_K's ``bsums``), derived when packing.
    """

    name: str
    ggml_type: int
    block: int
    fields: tuple
    quants: Codes
    sub_block: int
    d_dtype: str = "float16"
    dmin: str | None = None
    scales: Codes | None = None
    mins: Codes | None = None
    activation: str | None = None
    sums: str | None = None
    sums_dtype: str = "int16"
    offsets: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        offsets, at = {}, 0
        for name, size in self.fields:
            offsets[name] = (at, size)
            at += size
        object.__setattr__(self, "offsets", offsets)
        if self.block % self.sub_block:
            raise ValueError(f"{self.name}: sub-block {self.sub_block} does not divide block {self.block}")
        for codes in (self.quants, self.scales, self.mins):
            if codes is None:
                continue
            covered = np.zeros(codes.count, dtype=np.int64)
            for piece in codes.pieces:
                if piece.field not in offsets or piece.byte + piece.count > offsets[piece.field][1]:
                    raise ValueError(f"{self.name}: piece {piece} lies outside its field")
                covered[piece.first:piece.first + piece.count] += piece.width
            if (covered != codes.bits).any():
                raise ValueError(f"{self.name}: pieces give codes of {sorted(set(covered))} bits, "
                                 f"not {codes.bits}")

    @property
    def block_bytes(self):
        """Bytes of one packed block."""
        return sum(size for _, size in self.fields)

    @property
    def sub_blocks(self):
        return self.block // self.sub_block

    def describe(self):
        """One line for reports."""
        parts = [f"{self.block} elements in {self.block_bytes} bytes",
                 f"{self.quants.bits}-bit codes" + (f" offset {self.quants.offset}" if self.quants.offset else "")]
        if self.scales:
            parts.append(f"{self.sub_blocks} sub-blocks of {self.sub_block}, {self.scales.bits}-bit scales"
                         + (f" and {self.mins.bits}-bit mins" if self.mins else ""))
        if self.activation:
            parts.append(f"activations {self.activation}")
        return f"{self.name}: " + ", ".join(parts)


def _fmt(name, **kwargs):
    return BlockFormat(name=name, ggml_type=int(GGMLQuantizationType[name]), **kwargs)


Q8_0 = _fmt("Q8_0", block=32, sub_block=32, fields=(("d", 2), ("qs", 32)),
            quants=Codes(32, 8, interleaved("qs", 32, 8, 32), signed=True), activation="Q8_0")

Q4_0 = _fmt("Q4_0", block=32, sub_block=32, fields=(("d", 2), ("qs", 16)),
            quants=Codes(32, 4, interleaved("qs", 16, 4, 16), offset=8), activation="Q8_0")

Q2_K = _fmt("Q2_K", block=256, sub_block=16, fields=(("scales", 16), ("qs", 64), ("d", 2), ("dmin", 2)),
            quants=Codes(256, 2, interleaved("qs", 64, 2, 32)), dmin="dmin",
            scales=Codes(16, 4, (Bits("scales", 0, 16, 0, 4, 0),)),
            mins=Codes(16, 4, (Bits("scales", 0, 16, 4, 4, 0),)), activation="Q8_K")

# Q3_K: codes are 2 low bits from qs and a third bit from hmask; the value is code - 4 (ggml subtracts 4
# when the hmask bit is clear). Scales: 6 bits, low 4 in bytes 0-7 (two per byte), high 2 in bytes 8-11.
Q3_K = _fmt("Q3_K", block=256, sub_block=16, fields=(("hmask", 32), ("qs", 64), ("scales", 12), ("d", 2)),
            quants=Codes(256, 3, interleaved("qs", 64, 2, 32) + interleaved("hmask", 32, 1, 32, to_bit=2),
                         offset=4),
            scales=Codes(16, 6, tuple(Bits("scales", 0, 8, s * 4, 4, s * 8) for s in range(2))
                         + tuple(Bits("scales", 8, 4, s * 2, 2, s * 4, to_bit=4) for s in range(4)), offset=32),
            activation="Q8_K")

# Q4_K: 8 sub-blocks of 32; 6-bit scales and mins packed in 12 bytes (ggml's get_scale_min_k4).
Q4_K = _fmt("Q4_K", block=256, sub_block=32, fields=(("d", 2), ("dmin", 2), ("scales", 12), ("qs", 128)),
            quants=Codes(256, 4, interleaved("qs", 128, 4, 32)), dmin="dmin",
            scales=Codes(8, 6, (Bits("scales", 0, 4, 0, 6, 0), Bits("scales", 8, 4, 0, 4, 4),
                                Bits("scales", 0, 4, 6, 2, 4, to_bit=4))),
            mins=Codes(8, 6, (Bits("scales", 4, 4, 0, 6, 0), Bits("scales", 8, 4, 4, 4, 4),
                              Bits("scales", 4, 4, 6, 2, 4, to_bit=4))),
            activation="Q8_K")

# Q6_K: 4 low bits from ql, 2 high bits from qh, value code - 32; int8 scales per 16 elements.
Q6_K = _fmt("Q6_K", block=256, sub_block=16, fields=(("ql", 128), ("qh", 64), ("scales", 16), ("d", 2)),
            quants=Codes(256, 6, interleaved("ql", 128, 4, 64) + interleaved("qh", 64, 2, 32, to_bit=4),
                         offset=32),
            scales=Codes(16, 8, (Bits("scales", 0, 16, 0, 8, 0),), signed=True), activation="Q8_K")

# Q8_K: ggml's activation format for K-quant dot products: float32 d, int8 codes, int16 sums per 16.
Q8_K = _fmt("Q8_K", block=256, sub_block=16, fields=(("d", 4), ("qs", 256), ("bsums", 32)),
            quants=Codes(256, 8, interleaved("qs", 256, 8, 256), signed=True), d_dtype="float32", sums="bsums")

FORMATS = {spec.name: spec for spec in (Q8_0, Q4_0, Q2_K, Q3_K, Q4_K, Q6_K, Q8_K)}
#: formats a weight tensor may have (each names its activation partner)
WEIGHT_FORMATS = tuple(name for name, spec in FORMATS.items() if spec.activation)
#: formats MatMul activations are quantized to
ACTIVATION_FORMATS = ("Q8_0", "Q8_K")


def get_format(name) -> BlockFormat:
    """The spec named ``name`` (``"Q4_0"``...); raises :class:`ParameterError` naming the known ones."""
    try:
        return FORMATS[str(name).upper()]
    except KeyError:
        raise ParameterError(f"no block format named {name!r}; known: {', '.join(FORMATS)}") from None


def format_of_type(ggml_type) -> BlockFormat | None:
    """The spec of a GGUF tensor type (a ``GGMLQuantizationType`` or its number), or None when not described."""
    for spec in FORMATS.values():
        if spec.ggml_type == int(ggml_type):
            return spec
    return None
