"""flexarray's mapping compiler: layers to folds, folds to the configuration and beat stream the core follows.

Every layer becomes a (possibly sparse) GEMM ``out[m, n] = requantize(sum_k
src[index[m, k]] * W[k, n])``: ``index`` points into a flat source vector (the
input, with the padding value at position 0 for convolutions), so the compiler
sees which operands of a step are the same input value and sends it once
(MAERI's sliding-window reuse within a step, SIGMA's multicast to every
multiplier whose ``k`` matches). A BATCH_MATMUL is one such GEMM per batch
element with the rhs (an activation) stationary and its zero point's row term
as extra weights on the same operands (:func:`batch_matmul_weights`).

A :class:`Mapping` tiles the layer:

* ``rows`` output pixels per step (GEMM: ``T_M`` rows; convolution: a box of
  ``T_Y' x T_X'`` output pixels, ``box``), ``channels`` output channels per
  fold (``T_N`` / ``T_K``; depthwise: ``T_G`` channels);
* a k-chunk per fold: GEMM ``T_K`` consecutive k; convolution a ``T_R x T_S x
  T_C`` box of the filter (``chunk``); depthwise ``T_R x T_S``;
* ``sparse``: only the non-zero weights get a multiplier (SIGMA's flow), and
  a fold's k are only those with a non-zero weight in its channels: either
  consecutive k until the non-zeros fill the multipliers, or, with
  ``step_beats``, k packed into folds of at most that many beats a step
  (balanced by non-zeros: the fewest folds, each step's beats filled);
  ``regroup`` puts channels that share non-zero k into one fold's group
  (any channels may share a tile: each lane has its own parameters), so a
  group streams fewer distinct k. Both are the compiler's: the hardware
  only follows the map.

A virtual neuron (VN) is (pixel of the step, channel): its multipliers hold the
chunk's weights of that channel and sum into output lane ``pixel * channels +
channel``. A *fold* is one stationary configuration (weights, distribution and
reduction mapping) and the steps streamed through it; a *tile* is a channel
group and a run of at most ``acc_depth`` steps (``tile_steps`` when the mapping
sets it): its folds (one per k-chunk) accumulate into one bank of the buffer,
then it is read out through the requantizers with its lanes' per-channel
parameters while the next tile streams into the other bank. Short tiles make
the last readout short; PARAMS and WEIGHTS the core already holds (the same
channel group, the same fold) are not sent again.

The compiled :class:`Program` is the plan's schedule in executable form: its
command skeleton (what the cycle model needs) depends only on the layer's
shapes and weights, and its beat stream adds the input data.
"""

import struct
from dataclasses import dataclass, field, asdict

import numpy as np

from ...driver.layers import conv_output_size, im2col, lower_to_gemm
from ...driver.quant import DOUBLE, float_scale_fields
from ...errors import ParameterError, UnsupportedLayer
from ...hw.shell import word_beats
from . import art
from .gateware import PARAM_BYTES_PER_LANE, Opcode, dn_depth, lane_bytes, map_bytes
from .networks import lane_region, reaches

__all__ = ["Design", "Mapping", "Structure", "Command", "Program", "structure_of", "operands_of", "compile_program",
           "check_mapping", "vn_layout_legal", "channel_groups", "weights_field", "pack_stream", "unpack_output",
           "requant_words"]


@dataclass(frozen=True)
class Design:
    """The parameters of a flexarray design the compiler needs."""

    multipliers: int
    dn_bw: int
    rn_bw: int
    acc_depth: int
    rn: str = "fan"
    dn: str = "xbar"
    reach: int = 0               # multipliers per lane region (0: every lane reaches every node)

    @classmethod
    def from_params(cls, params):
        from .gateware import DISTRIBUTION_NETWORKS, REDUCTION_NETWORKS
        return cls(params["multipliers"], params["dn_bw"], params["rn_bw"], params["acc_depth"],
                   REDUCTION_NETWORKS[params.get("rn", 0)], DISTRIBUTION_NETWORKS[params.get("dn", 0)],
                   params.get("reach", 0))

    @property
    def dn_depth(self):
        """Register levels of the distribution network (0 for the crossbar)."""
        return dn_depth(self.multipliers, self.dn_bw, self.dn)

    @property
    def beat_bytes(self):
        return self.dn_bw

    def beats(self, nbytes):
        return word_beats(nbytes, 8 * self.dn_bw)

    @property
    def map_bytes(self):
        return map_bytes(self.multipliers, self.rn_bw, self.rn, self.reach)

    @property
    def map_beats(self):
        return self.beats(self.map_bytes)

    @property
    def weight_beats(self):
        return self.beats(self.multipliers)

    def param_beats(self, lanes):
        """PARAMS payload beats for a tile using ``lanes`` output lanes (the first ones)."""
        return self.beats(PARAM_BYTES_PER_LANE * lanes)

    def out_beats(self, lanes):
        """Output beats per accumulation word of a tile using ``lanes`` output lanes."""
        return self.beats(lanes)


@dataclass(frozen=True)
class Mapping:
    """How a layer is tiled onto the array (see the module docstring); a plain, JSON-able value."""

    rows: int = 1
    channels: int = 1
    chunk: tuple = (1,)          # GEMM: (T_K,); convolution: (T_R, T_S, T_C); depthwise: (T_R, T_S)
    box: tuple = None            # convolution / depthwise: (T_Y', T_X'), rows == T_Y' * T_X'
    sparse: bool = False
    tile_steps: int = None       # steps per tile (None: the accumulation buffer's depth)
    step_beats: int = None       # sparse: folds packed to at most this many beats a step (None: fill multipliers)
    regroup: bool = False        # sparse: channels grouped by shared non-zero k, not consecutively

    def as_dict(self):
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        # the sparse-only fields appear only when set, so dense mappings read as before
        for name in ("step_beats", "regroup"):
            if not out[name]:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, d):
        return cls(rows=d["rows"], channels=d["channels"], chunk=tuple(d["chunk"]),
                   box=None if d.get("box") is None else tuple(d["box"]), sparse=bool(d.get("sparse", False)),
                   tile_steps=d.get("tile_steps"), step_beats=d.get("step_beats"),
                   regroup=bool(d.get("regroup", False)))

    def steps_per_tile(self, design):
        return self.tile_steps or design.acc_depth


@dataclass
class Structure:
    """A layer as the compiler sees it before any input data: operand indices, weights, output geometry."""

    kind: str                    # "gemm", "conv" (CONV_2D, FULLY_CONNECTED via gemm) or "depthwise"
    index: np.ndarray            # int64 [M, K] into the source vector
    weights: np.ndarray          # int8 [K, N]
    out_shape: tuple
    geometry: tuple = None       # (batch, OH, OW) for convolutions
    kernel: tuple = None         # (KH, KW, C) for convolutions
    depth_multiplier: int = 1
    stride: tuple = (1, 1)
    dilation: tuple = (1, 1)
    #: GEMM kinds: the source column of each k (None: k itself) and the source's row length (None: K). A
    #: BATCH_MATMUL repeats every source column for its zero-point terms (see :func:`batch_matmul_weights`).
    operand_k: np.ndarray = None
    source_k: int = None
    #: True when the stationary operand is an activation (BATCH_MATMUL's rhs): its values, and so its zeros,
    #: are not known when the layer is mapped, so only dense mappings are legal
    activation_weights: bool = False
    #: what sparse mappings derive from the weights (channel groups, folds' k), kept per structure
    derived: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def m(self):
        return self.index.shape[0]

    @property
    def k(self):
        return self.index.shape[1]

    @property
    def n(self):
        return self.weights.shape[1]

    @property
    def row_length(self):
        """GEMM kinds: values per row of the source (its K)."""
        return self.k if self.source_k is None else self.source_k

    def source_columns(self, ks):
        """GEMM kinds: the source column of each k of ``ks`` (negative k, a padding position, stays itself)."""
        ks = np.asarray(ks, np.int64)
        if self.operand_k is None:
            return ks
        return np.where(ks >= 0, self.operand_k[np.maximum(ks, 0)], ks)


def _conv_index(input_shape, kernel_hw, stride, dilation, padding):
    """im2col of an image of source positions (0 is the padding value, the input starts at 1)."""
    n, h, w, c = input_shape
    positions = np.arange(1, n * h * w * c + 1, dtype=np.int64).reshape(n, h, w, c)
    index, _ = im2col(positions, kernel_hw, stride, dilation, padding, 0)
    return index


def batch_matmul_terms(zero_point):
    """The int8 weights that make up ``-zero_point`` (the rhs zero point's term of every product): none for a
    zero point of 0, ``[-zero_point]``, or ``[64, 64]`` for -128 (128 is not an int8)."""
    offset = -int(zero_point)
    if offset == 0:
        return []
    return [offset] if offset <= 127 else [64, 64]


def batch_matmul_weights(b, zero_point):
    """The stationary operand of one BATCH_MATMUL product: rhs ``b`` [K, N] (int8) with its zero point's
    terms interleaved, [T*K, N] int8, rows ``k*T`` = ``b[k]`` and ``k*T + t`` = the ``t``-th term of
    :func:`batch_matmul_terms` (T = 1 + their count), so that

        sum_k' a[m, k' // T] * W[k', n] = sum_k a[m, k] * (b[k, n] - zb),

    the product with the row-offset term TFLite's kernel adds (``-zb * rowsum(a[m])``) done by the array's
    multipliers, each term multiplying the same streamed operand as its ``b`` (sent once, multicast)."""
    terms = batch_matmul_terms(zero_point)
    k, n = b.shape
    out = np.empty((k, 1 + len(terms), n), np.int8)
    out[:, 0] = b
    for t, value in enumerate(terms):
        out[:, 1 + t] = value
    return out.reshape(k * (1 + len(terms)), n)


def _batch_matmul_structure(layer, input_shapes, rhs):
    if len(input_shapes) != 2:
        raise UnsupportedLayer(f"BATCH_MATMUL takes two input shapes (lhs, rhs), not {len(input_shapes)}")
    try:
        _, m, n, k = layer.shapes(*input_shapes)
    except ParameterError as error:
        raise UnsupportedLayer(str(error)) from None
    if rhs is None:
        # planning: the rhs is an activation, unknown until the layer runs; only its shape matters to a dense
        # mapping (any non-zero value stands in for it)
        rhs = np.ones((k, n), np.int8)
    if rhs.shape != (k, n):
        raise UnsupportedLayer(f"BATCH_MATMUL rhs element {rhs.shape} is not K x N = {k} x {n}")
    weights = batch_matmul_weights(rhs, layer.rhs_zero_point)
    operand_k = np.repeat(np.arange(k, dtype=np.int64), weights.shape[0] // k)
    index = np.arange(m, dtype=np.int64)[:, None] * k + operand_k[None, :]
    return Structure("gemm", index, weights, (m, n), operand_k=operand_k, source_k=k, activation_weights=True)


def structure_of(layer, input_shape, rhs_shape=None, rhs=None):
    """The :class:`Structure` of a gemm, fc, conv2d or depthwise_conv2d layer on ``input_shape``; of one batch
    element's product of a batch_matmul on (``input_shape``, ``rhs_shape``), with its rhs ``rhs`` (int8 [K, N],
    adj applied) when known."""
    op = getattr(layer, "op", None)
    if op == "batch_matmul":
        return _batch_matmul_structure(layer, (input_shape,) if rhs_shape is None else (input_shape, rhs_shape), rhs)
    if op == "gemm":
        if len(input_shape) != 2 or input_shape[1] != layer.b.shape[0]:
            raise UnsupportedLayer(f"GEMM input {tuple(input_shape)} does not chain with weights {layer.b.shape}")
        m, k = input_shape
        return Structure("gemm", np.arange(m * k, dtype=np.int64).reshape(m, k), layer.b, (m, layer.b.shape[1]))
    if op == "fc":
        m, n, k = layer.gemm_shape(input_shape)
        return Structure("gemm", np.arange(m * k, dtype=np.int64).reshape(m, k), np.ascontiguousarray(layer.weights.T),
                         (m, n))
    if op in ("conv2d", "depthwise_conv2d"):
        if len(input_shape) != 4:
            raise UnsupportedLayer(f"{op} input must be NHWC, not {tuple(input_shape)}")
        cout, kh, kw = layer.filters.shape[0], layer.filters.shape[1], layer.filters.shape[2]
        batch, h, w, cin = input_shape
        oh = conv_output_size(h, kh, layer.stride[0], layer.dilation[0], layer.padding)
        ow = conv_output_size(w, kw, layer.stride[1], layer.dilation[1], layer.padding)
        if oh <= 0 or ow <= 0:
            raise UnsupportedLayer(f"{op} of a {h}x{w} input with a {kh}x{kw} kernel has no output")
        index = _conv_index(input_shape, (kh, kw), layer.stride, layer.dilation, layer.padding)
        if op == "conv2d":
            if layer.filters.shape[3] != cin:
                raise UnsupportedLayer(f"CONV_2D input shape {tuple(input_shape)} does not match filter "
                                       f"{layer.filters.shape}")
            weights = np.ascontiguousarray(layer.filters.reshape(cout, kh * kw * cin).T)
            return Structure("conv", index, weights, (batch, oh, ow, cout), (batch, oh, ow), (kh, kw, cin), 1,
                             tuple(layer.stride), tuple(layer.dilation))
        if cin != layer.in_channels:
            raise UnsupportedLayer(f"DEPTHWISE_CONV_2D input shape {tuple(input_shape)} does not match "
                                   f"{layer.in_channels} input channels")
        return Structure("depthwise", index, _depthwise_weights(layer), (batch, oh, ow, layer.out_channels),
                         (batch, oh, ow), (kh, kw, cin), layer.multiplier, tuple(layer.stride),
                         tuple(layer.dilation))
    raise UnsupportedLayer(f"flexarray runs gemm, fc, conv2d, depthwise_conv2d and batch_matmul layers, not "
                           f"{op or type(layer).__name__}")


def _depthwise_weights(layer):
    """A depthwise filter as one block-diagonal GEMM B [KH*KW*C, C*multiplier] in im2col's (kh, kw, c) order."""
    (kh, kw), c, m = layer.kernel, layer.in_channels, layer.multiplier
    taps = kh * kw
    b = np.zeros((taps, c, c, m), np.int8)
    w = layer.filters.reshape(taps, c, m)
    for ci in range(c):
        b[:, ci, ci, :] = w[:, ci, :]
    return b.reshape(taps * c, c * m)


def weights_field(layer):
    """The name of the layer's int8 weight array (what sparsity is drawn on)."""
    return {"gemm": "b", "fc": "weights", "batch_matmul": None}.get(layer.op, "filters")


def batch_matmul_operands(layer, lhs, rhs):
    """Per batch element (QuantizedGemm, source vector, rhs [K, N]) of a batch_matmul on ``lhs``, ``rhs``, and the
    output shape. The GEMM's bias holds the zero-point terms a column can (``K*za*zb - za*colsum(b)``, from
    the rhs element, on the host as the gemm core's driver does); its row term is in the weights."""
    a, b, shape = layer.operands(lhs, rhs)
    out = []
    for i in range(a.shape[0]):
        gemm = layer.gemm(a[i], b[i])
        out.append((gemm, np.ascontiguousarray(a[i]).reshape(-1), np.ascontiguousarray(b[i])))
    return out, shape


def batch_matmul_golden(layer, lhs, rhs):
    """What the array computes for a batch_matmul: per element, the GEMM of the interleaved weights (no row
    offset left to the requantizer), TFLite-exact requantization."""
    from ...driver.layers import QuantizedGemm
    parts, shape = batch_matmul_operands(layer, lhs, rhs)
    outs = []
    for gemm, source, b in parts:
        weights = batch_matmul_weights(b, layer.rhs_zero_point)
        repeat = weights.shape[0] // b.shape[0]
        expanded = QuantizedGemm(np.repeat(gemm.a, repeat, axis=1), weights, gemm.bias, gemm.scale, gemm.rounding,
                                 gemm.output_zero_point, gemm.act_min, gemm.act_max)
        outs.append(expanded.reference())
    return np.stack(outs).reshape(shape)


def operands_of(layer, x):
    """(QuantizedGemm with the layer's requantization, source vector int8) for running ``layer`` on ``x``."""
    if layer.op == "depthwise_conv2d":
        # one group of every channel: the block-diagonal GEMM whose columns are the output channels in order
        ((_, gemm),), _ = layer.lower(x, layer.in_channels)
    else:
        gemm, _ = layer.lower(x)
    if layer.op in ("conv2d", "depthwise_conv2d"):
        source = np.concatenate([np.array([layer.input_zero_point], np.int8), x.reshape(-1).astype(np.int8)])
    else:
        source = gemm.a.reshape(-1)
    return gemm, source


# ---- mappings ----

def _chunks(structure, mapping):
    """Per k-chunk, a function channel -> the chunk's k indices (before dropping zero weights)."""
    k = structure.k
    if structure.kind == "gemm":
        # The last chunk is padded with distinct k < 0 (weight 0, operand 0) to the others' size, so every fold
        # has the same map and the map is loaded once, not again for a short last chunk.
        (size,) = mapping.chunk
        return [(lambda n, lo=lo: np.where(np.arange(lo, lo + size) < k, np.arange(lo, lo + size),
                                           k - 1 - np.arange(lo, lo + size)))
                for lo in range(0, k, size)]
    kh, kw, c = structure.kernel
    if structure.kind == "conv":
        tr, ts, tc = mapping.chunk
        out = []
        for r0 in range(0, kh, tr):
            for s0 in range(0, kw, ts):
                for c0 in range(0, c, tc):
                    r, s, cc = np.meshgrid(np.arange(r0, min(r0 + tr, kh)), np.arange(s0, min(s0 + ts, kw)),
                                           np.arange(c0, min(c0 + tc, c)), indexing="ij")
                    ks = ((r * kw + s) * c + cc).reshape(-1)
                    out.append(lambda n, ks=ks: ks)
        return out
    tr, ts = mapping.chunk
    dm = structure.depth_multiplier
    out = []
    for r0 in range(0, kh, tr):
        for s0 in range(0, kw, ts):
            r, s = np.meshgrid(np.arange(r0, min(r0 + tr, kh)), np.arange(s0, min(s0 + ts, kw)), indexing="ij")
            taps = (r * kw + s).reshape(-1) * c
            out.append(lambda n, taps=taps: taps + n // dm)
    return out


def vn_layout_legal(design, spans):
    """(True, "") when the design's reduction network reduces the VN layout ``spans`` [(first, last)] (lane
    order) in one pass, else (False, the reason). The forwarding adder network and the segmented-sum
    reference take any layout of disjoint runs; the augmented reduction tree routes it (``art.py``). With a
    lane reach, the runs may lie in any order, and each must overlap its lane's region."""
    if len(spans) > design.rn_bw:
        return False, f"{len(spans)} VNs exceed rn_bw={design.rn_bw} output lanes"
    if design.rn == "art":
        return art.legal(design.multipliers, spans)
    try:
        # with a lane reach the VNs lie region by region, not in lane order: disjoint in any order
        art.check_spans(design.multipliers, sorted(spans) if design.reach else spans)
    except UnsupportedLayer as error:
        return False, str(error)
    for lane, (a, b) in enumerate(spans):
        if b >= a and not reaches(lane, (a ^ b).bit_length(), a >> (a ^ b).bit_length(), design.multipliers,
                                  design.reach):
            start = lane_region(lane, design.multipliers, design.reach) * design.reach
            return False, (f"VN {lane} (multipliers {a}..{b}) does not overlap lane {lane}'s region (multipliers "
                           f"{start}..{start + design.reach - 1}, reach {design.reach}), so its sum is out of the "
                           "lane's reach")
    return True, ""


def region_spans(design, sizes):
    """(first, last) multiplier of each lane's VN of ``sizes[lane]`` multipliers (0: an empty VN, (0, -1)).

    Without a lane reach: one after another in lane order from multiplier 0. With one: region by region
    (lane order within a region), each VN as early as it can be while it overlaps its lane's region
    (so its lowest common ancestor is within the lane's reach), leaving unused multipliers where a region
    starts beyond the VNs before it. Raises :class:`UnsupportedLayer` when a VN cannot overlap its region.
    """
    n, reach = design.multipliers, design.reach
    spans, start = [(0, -1)] * len(sizes), 0
    if not reach:
        for lane, size in enumerate(sizes):
            spans[lane] = (start, start + size - 1)
            start += size
        return spans
    order = sorted(range(len(sizes)), key=lambda lane: (lane_region(lane, n, reach), lane))
    for lane in order:
        size = sizes[lane]
        if size == 0:
            continue
        region = lane_region(lane, n, reach) * reach
        first = max(start, region - size + 1)
        if first > region + reach - 1 or first + size > n:
            raise UnsupportedLayer(f"{len(sizes)} VNs of up to {max(sizes)} multipliers do not fit the lane regions "
                                   f"of {reach} multipliers (lane {lane}'s VN of {size} cannot overlap multipliers "
                                   f"{region}..{region + reach - 1})")
        spans[lane] = (first, first + size - 1)
        start = first + size
    return spans


def check_mapping(design, structure, mapping):
    """Raise :class:`UnsupportedLayer` with the reason when ``mapping`` is illegal for this layer on ``design``."""
    expected = {"gemm": 1, "conv": 3, "depthwise": 2}[structure.kind]
    if len(mapping.chunk) != expected or min(mapping.chunk) < 1:
        raise UnsupportedLayer(f"a {structure.kind} mapping takes a chunk of {expected} positive sizes, "
                               f"not {mapping.chunk}")
    if mapping.tile_steps is not None and not (isinstance(mapping.tile_steps, int) and
                                               1 <= mapping.tile_steps <= design.acc_depth):
        raise UnsupportedLayer(f"steps per tile must be an integer in 1..acc_depth ({design.acc_depth}), "
                               f"not {mapping.tile_steps!r}")
    if mapping.step_beats is not None or mapping.regroup:
        if not mapping.sparse:
            raise UnsupportedLayer("step_beats and regroup shape sparse folds; this mapping is dense")
        if mapping.step_beats is not None and not (isinstance(mapping.step_beats, int) and
                                                   1 <= mapping.step_beats <= 255):
            raise UnsupportedLayer(f"beats per step must be an integer in 1..255, not {mapping.step_beats!r}")
        if mapping.step_beats is not None and mapping.step_beats * design.dn_bw < mapping.rows:
            raise UnsupportedLayer(f"{mapping.step_beats} beats a step carry {mapping.step_beats * design.dn_bw} "
                                   f"values, fewer than one k of {mapping.rows} pixels")
    if mapping.rows < 1 or mapping.channels < 1:
        raise UnsupportedLayer(f"rows and channels per fold must be positive, not {mapping.rows} and {mapping.channels}")
    if structure.kind != "gemm":
        if mapping.box is None or len(mapping.box) != 2 or mapping.box[0] * mapping.box[1] != mapping.rows:
            raise UnsupportedLayer(f"a convolution mapping needs a box (T_Y', T_X') of {mapping.rows} pixels, "
                                   f"not {mapping.box}")
        _, oh, ow = structure.geometry
        if oh % mapping.box[0] or ow % mapping.box[1]:
            raise UnsupportedLayer(f"the pixel box {mapping.box} must divide the {oh}x{ow} output")
    vns = mapping.rows * mapping.channels
    if vns > design.rn_bw:
        raise UnsupportedLayer(f"{mapping.rows} pixels x {mapping.channels} channels = {vns} virtual neurons per step "
                               f"exceed rn_bw={design.rn_bw} output lanes")
    if not mapping.sparse:
        size = int(np.prod(mapping.chunk))
        if vns * size > design.multipliers:
            raise UnsupportedLayer(f"{vns} virtual neurons of {size} multipliers need {vns * size} multipliers, "
                                   f"more than the {design.multipliers} of this design")
        # a last, shorter chunk places wherever the full one does (its VNs start no later)
        region_spans(design, [size] * vns)
    if mapping.sparse and structure.activation_weights:
        raise UnsupportedLayer("a sparse mapping needs the stationary operand's zeros, but this layer's is an "
                               "activation (unknown when mapping): map it densely")
    if mapping.chunk[0] > structure.k and structure.kind == "gemm":
        raise UnsupportedLayer(f"k-chunk {mapping.chunk[0]} exceeds K={structure.k}")


def _pixel_steps(structure, mapping):
    """int64 [S, rows]: the output pixels (rows of the GEMM) of each step; -1 where a last step is short."""
    m = structure.m
    if structure.kind == "gemm":
        steps = -(-m // mapping.rows)
        pixels = np.arange(steps * mapping.rows, dtype=np.int64)
        pixels[pixels >= m] = -1
        return pixels.reshape(steps, mapping.rows)
    batch, oh, ow = structure.geometry
    ty, tx = mapping.box
    b, by, bx, dy, dx = np.meshgrid(np.arange(batch), np.arange(oh // ty), np.arange(ow // tx), np.arange(ty),
                                    np.arange(tx), indexing="ij")
    pixels = (b * oh + by * ty + dy) * ow + bx * tx + dx
    return pixels.reshape(-1, ty * tx)


@dataclass
class Command:
    """One command of the stream: ``op`` (an :class:`Opcode` name), payload beats, and for STEPS/READOUT a count."""

    op: str
    beats: int
    count: int = 0
    per_step: int = 0
    last: bool = False
    first: bool = False
    headless: bool = False       # STEPS whose header is the WEIGHTS header before them


@dataclass
class Run:
    """The input beats from one READOUT to the next one's header (inclusive), all taken one per cycle;
    the last step fires on the beat before the header. Then ``words`` words of ``word_beats`` output
    beats each are read out."""

    beats: int
    words: int
    word_beats: int = 1
    last: bool = False


@dataclass
class Fold:
    map_bytes: bytes
    weights: np.ndarray          # int8 [N]
    value_index: np.ndarray      # int64 [S, slots] into the source, negative = 0
    per_step: int
    used: int
    first: bool


@dataclass
class Tile:
    params_lanes: np.ndarray     # int64 [lanes] channel of each lane, -1 unused
    folds: list
    out_index: np.ndarray        # int64 [S, lanes] into the flat output, -1 ignored
    lanes: int = 0               # output lanes the tile uses (its PARAMS and output words cover these)


@dataclass
class Program:
    """A compiled layer: tiles of folds, and the command skeleton the cycle model walks."""

    tiles: list
    commands: list
    runs: list                   # what the cycle model walks
    macs_issued: int             # multiplies the array issues (used multipliers x steps)
    config_bytes: int            # MAP + WEIGHTS + PARAMS bytes (the configuration overhead)
    data_bytes: int              # STEPS payload bytes
    out_shape: tuple
    out_size: int


def channel_groups(structure, mapping):
    """The channel groups of ``mapping``'s tiles, in order: consecutive channels, or with ``regroup`` (sparse)
    channels that share non-zero k (see :func:`_regroup`)."""
    n, size = structure.n, mapping.channels
    if not (mapping.sparse and mapping.regroup and regroups(structure, size)):
        return [list(range(c0, min(c0 + size, n))) for c0 in range(0, n, size)]
    key = ("groups", size)
    if key not in structure.derived:
        structure.derived[key] = _regroup(structure.weights != 0, size)
    return structure.derived[key]


def regroups(structure, size):
    """Whether ``regroup`` changes the groups of ``size`` channels (more than one group, and a layer small
    enough for the grouping's work)."""
    return size < structure.n and structure.n * structure.n * structure.k <= REGROUP_WORK


#: layers with more than this N^2 x K are grouped consecutively even with ``regroup`` (the greedy grouping's
#: work; a mapping may still ask for it, it just gets consecutive groups)
REGROUP_WORK = 1 << 28
#: channel swaps :func:`_regroup` weighs at most (its refinement's work is about this times K)
REGROUP_SWAPS = 1 << 16


def _regroup(nonzero, size):
    """Channels in groups of ``size`` (the last may be short) with few distinct non-zero k per group.

    A group's folds stream every k that has a non-zero weight in any of its channels, once per step, so
    the data a sparse layer streams is about the rows times the sum over groups of that count. Greedy:
    a group starts from the remaining channel with the most non-zeros and takes, one by one, the channel
    adding the fewest new k (ties: the lowest index); then pairwise swaps between groups that lower the
    sum, best first per pair of groups, while the swaps weighed stay under ``REGROUP_SWAPS``.
    """
    k, n = nonzero.shape
    columns = np.ascontiguousarray(nonzero.T)                     # [N, K] bool
    counts = columns.sum(axis=1)
    left = np.ones(n, bool)
    groups = []
    while left.any():
        remaining = np.flatnonzero(left)
        seed = int(remaining[np.argmax(counts[remaining])])
        group, union = [seed], columns[seed].copy()
        left[seed] = False
        while len(group) < size and left.any():
            remaining = np.flatnonzero(left)
            added = (columns[remaining] & ~union).sum(axis=1)
            pick = int(remaining[np.argmin(added)])
            group.append(pick)
            union |= columns[pick]
            left[pick] = False
        groups.append(group)
    per_k = [columns[g].sum(axis=0) for g in groups]              # per group, non-zeros at each k
    budget = REGROUP_SWAPS
    improved = True
    while improved and budget > 0:
        improved = False
        for gi in range(len(groups)):
            for gj in range(gi + 1, len(groups)):
                if budget <= 0:
                    break
                a, b = columns[groups[gi]].astype(np.int32), columns[groups[gj]].astype(np.int32)
                budget -= len(a) * len(b)
                # swapping a[x] and b[y]: group i's count at each k becomes per_k[i] - a[x] + b[y]
                ci = per_k[gi][None, None, :] - a[:, None, :] + b[None, :, :]
                cj = per_k[gj][None, None, :] - b[None, :, :] + a[:, None, :]
                after = (ci > 0).sum(axis=2) + (cj > 0).sum(axis=2)
                before = int((per_k[gi] > 0).sum() + (per_k[gj] > 0).sum())
                x, y = np.unravel_index(np.argmin(after), after.shape)
                if after[x, y] < before:
                    per_k[gi], per_k[gj] = ci[x, y], cj[x, y]
                    groups[gi][x], groups[gj][y] = groups[gj][y], groups[gi][x]
                    improved = True
    return [sorted(g) for g in groups]


def _sparse_chunks(structure, mapping, design, group):
    """The k of each fold of a channel group (sparse mappings): only k with a non-zero weight in the group,
    so that each fold's non-zeros fit the multipliers and, with ``step_beats``, its step fits that many beats.

    Without ``step_beats``: consecutive k until the multipliers are full. With it: at most ``step_beats *
    dn_bw // rows`` k a fold (a step brings ``rows`` values per k), packed by :func:`_pack_folds` so that
    the folds' beats a step add up to about the group's k over ``dn_bw // rows`` and the folds are about as
    few as the multipliers allow. A group with no non-zero weight keeps one empty fold (its outputs are
    the bias). Cached in ``structure.derived`` (as arrays, so a structure stays picklable).
    """
    key = ("chunks", tuple(group), mapping.rows, mapping.step_beats, mapping.tile_steps, design)
    ks = structure.derived.get(key)
    if ks is None:
        ks = _sparse_ks(structure, mapping, design, group)
        if structure.k * structure.n <= CACHED_SPARSE_WEIGHTS:
            structure.derived[key] = ks           # arrays only: the structure stays picklable
    return [(lambda n, ks=ks: ks) for ks in ks]


#: layers with at most this many weights keep their sparse folds' k per mapping (a search asks for each
#: twice); larger ones recompute them rather than hold them for every candidate
CACHED_SPARSE_WEIGHTS = 1 << 20


def _sparse_ks(structure, mapping, design, group):
    """The k of each fold of ``group`` (see :func:`_sparse_chunks`)."""
    nonzero = structure.weights[:, group] != 0
    per_k = nonzero.sum(axis=1) * mapping.rows
    loads, capacity = _region_loads(design, nonzero, mapping.rows)
    heavy = np.flatnonzero((loads > capacity).any(axis=1))
    if heavy.size:
        k = int(heavy[0])
        where = (f"the {design.multipliers} multipliers" if not design.reach else
                 f"the {design.reach} multipliers of a lane region")
        raise UnsupportedLayer(f"{mapping.rows} pixels x {int(per_k[k]) // mapping.rows} non-zero weights at k={k} "
                               f"exceed {where}")
    live = np.flatnonzero(per_k)
    if live.size == 0:
        chunks = [np.zeros(0, np.int64)]
    elif mapping.step_beats is None:
        chunks, start, total = [], 0, np.zeros(loads.shape[1], np.int64)
        for i, k in enumerate(live):
            if (total + loads[k] > capacity).any():
                chunks.append(live[start:i])
                start, total = i, 0 * total
            total += loads[k]
        chunks.append(live[start:])
    else:
        steps = -(-structure.m // mapping.rows)
        tiles = -(-steps // mapping.steps_per_tile(design))
        chunks = [np.sort(np.asarray(ks, np.int64))
                  for ks in _pack_folds(live, per_k, design, mapping.rows, mapping.step_beats, steps, tiles,
                                        loads if design.reach else None) if ks]
    return chunks


def _region_loads(design, nonzero, rows):
    """(multipliers each k needs in each lane region [K, regions], multipliers of a region) for a sparse
    tile of ``rows`` pixels over ``nonzero`` [K, channels] (lane ``p * channels + c``); without a lane
    reach one region of all the multipliers. A fold whose k keep every region within its multipliers
    places (each VN inside its region: :func:`region_spans`)."""
    if not design.reach:
        return (nonzero.sum(axis=1) * rows)[:, None], design.multipliers
    channels = nonzero.shape[1]
    regions = design.multipliers // design.reach
    per_lane = np.tile(nonzero, (1, rows)).astype(np.int64)
    of_lane = np.array([lane_region(lane, design.multipliers, design.reach) for lane in range(rows * channels)])
    loads = np.stack([per_lane[:, of_lane == r].sum(axis=1) for r in range(regions)], axis=1)
    return loads, design.reach


#: (folds, beats) splits :func:`_pack_folds` tries before falling back to more folds of even size
PACK_TRIES = 64


def _pack_folds(live, per_k, design, rows, most_beats, steps, tiles, loads=None):
    """The k ``live`` (each needing ``per_k[k]`` multipliers) in folds of at most ``most_beats`` beats a step.

    A fold of ``b`` beats a step holds ``b * dn_bw // rows`` k. What a split into ``F`` folds of ``B`` beats
    a step in all costs is about ``steps * B`` data beats plus ``tiles * F`` fold configurations (map and
    weights); splits are tried cheapest first, each fold given an even share of the ``B`` beats, and the k
    are placed heaviest first into the fold with the most free multipliers per free k place. The first
    split that fits wins (after ``PACK_TRIES``, the fewest folds of ``most_beats`` beats that fit). With
    ``loads`` [K, regions] (a lane reach), a fold must also keep each region within its multipliers.
    """
    capacity, bw = design.multipliers, design.dn_bw
    holds = lambda beats: beats * bw // rows                         # noqa: E731
    order = live[np.argsort(-per_k[live], kind="stable")]
    weights = per_k[order].astype(np.int64)
    used, total = live.size, int(weights.sum())
    fold_cost = tiles * (design.map_beats + 1 + design.weight_beats + 1)
    fewest = max(-(-total // capacity), -(-used // holds(most_beats)))
    if loads is not None:
        weights = loads[order].astype(np.int64)          # [k, regions]: each region holds design.reach
        capacity = design.reach
        fewest = max(fewest, int(-(-weights.sum(axis=0).max() // capacity)))
    def fits(folds, beats):
        base, extra = divmod(beats, folds)
        return extra * holds(base + 1) + (folds - extra) * holds(base) >= used

    options = []
    for folds in range(fewest, min(used, fewest + 16) + 1):
        least = max(folds, -(-used * rows // bw))                   # a fold of b beats holds about b * bw / rows k
        while least <= folds * most_beats and not fits(folds, least):
            least += 1
        if least <= folds * most_beats:
            # the least beats that hold the k, and a few more (more room may let the multipliers fit)
            options += [(steps * beats + fold_cost * folds, folds, beats)
                        for beats in range(least, min(folds * most_beats, least + 4) + 1)]
    for _, folds, beats in sorted(options)[:PACK_TRIES]:
        base, extra = divmod(beats, folds)
        places = [holds(base + 1)] * extra + [holds(base)] * (folds - extra)
        packed = _assign(order, weights, places, capacity)
        if packed is not None:
            return packed
    folds = fewest
    while True:
        packed = _assign(order, weights, [holds(most_beats)] * folds, capacity)
        if packed is not None:
            return packed
        folds += 1


def _assign(order, weights, places, capacity):
    """k ``order`` (heaviest first) into bins of ``places[i]`` k and ``capacity`` multipliers each, each into
    the bin with the most free multipliers per free place (ties: the first); None when one does not fit."""
    import heapq
    if np.ndim(weights) == 2:
        return _assign_regions(order, weights, places, capacity)
    heap = [(-capacity / p, i) for i, p in enumerate(places) if p > 0]
    heapq.heapify(heap)
    bins = [[] for _ in places]
    loads = [0] * len(places)
    for k, weight in zip(order.tolist(), weights.tolist()):
        if not heap:
            return None
        _, i = heapq.heappop(heap)
        loads[i] += weight
        if loads[i] > capacity:
            return None
        bins[i].append(k)
        free = places[i] - len(bins[i])
        if free:
            heapq.heappush(heap, (-(capacity - loads[i]) / free, i))
    return bins


def _assign_regions(order, weights, places, capacity):
    """:func:`_assign` with per-region loads ``weights`` [k, regions], ``capacity`` multipliers a region:
    each k into the bin with the most free multipliers per free place among those it fits."""
    loads = np.zeros((len(places), weights.shape[1]), np.int64)
    counts = np.zeros(len(places), np.int64)
    places = np.asarray(places, np.int64)
    bins = [[] for _ in range(len(places))]
    for k, weight in zip(order.tolist(), weights):
        fits = (counts < places) & (loads + weight <= capacity).all(axis=1)
        if not fits.any():
            return None
        free = (capacity * loads.shape[1] - loads.sum(axis=1)) / np.maximum(places - counts, 1)
        i = int(np.flatnonzero(fits)[np.argmax(free[fits])])
        loads[i] += weight
        counts[i] += 1
        bins[i].append(k)
    return bins


def _unique_columns(index):
    """(representative columns [S, U], slot of every column): columns equal in every step share a slot."""
    rows = np.ascontiguousarray(index.T)
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1)
    _, first, slot_of = np.unique(keys, return_index=True, return_inverse=True)
    # slots numbered by first use, so the map depends only on which operands are equal, not on their values
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return index[:, first[order]], rank[slot_of.reshape(-1)]


def _placement(structure, mapping, group, ks_of, design=None):
    """A fold's multipliers, VN by VN in lane order: pixel, k and channel of each, each VN's (first, last)
    multiplier, and the multiplier each entry sits at (:func:`region_spans`; in order from 0 without a
    lane reach or ``design``)."""
    pixel, ks, channels = [], [], []
    for p in range(mapping.rows):
        for channel in group:
            chunk = ks_of(channel)
            if mapping.sparse:
                chunk = chunk[structure.weights[chunk, channel] != 0]
            pixel.append(np.full(len(chunk), p, np.int64))
            ks.append(np.asarray(chunk, np.int64))
            channels.append(np.full(len(chunk), channel, np.int64))
    sizes = [len(part) for part in ks]
    spans = region_spans(design if design is not None else Design(1, 1, 1, 1), sizes)
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)   # noqa: E731
    where = cat([np.arange(a, b + 1, dtype=np.int64) for a, b in spans])
    return cat(pixel), cat(ks), cat(channels), spans, where


def _layout(design, structure, positions_p, positions_k, spans, pixels, where=None):
    """(value index [S, slots], beats per step, map bytes) of a fold's placement over steps ``pixels``;
    ``where``: the multiplier of each position (default: in order from 0)."""
    n_mult, bw = design.multipliers, design.dn_bw
    used = positions_k.size
    if used > n_mult:
        raise UnsupportedLayer(f"a fold needs {used} multipliers, more than the {n_mult} of this design")
    if used and structure.kind == "gemm":
        # A GEMM operand is (row, k): the step's distinct values are its rows times the fold's distinct k.
        # ... numbered by first use, as ``_unique_columns`` does
        distinct, first, inverse = np.unique(structure.source_columns(positions_k), return_index=True,
                                             return_inverse=True)
        order = np.argsort(first)
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        distinct = distinct[order]
        slot_of = positions_p * distinct.size + rank[inverse.reshape(-1)]
        rows = np.repeat(np.arange(pixels.shape[1]), distinct.size)
        ks = np.tile(distinct, pixels.shape[1])
        pix = pixels[:, rows]
        value_index = np.where((pix >= 0) & (ks >= 0)[None, :], pix * structure.row_length + ks[None, :], -1)
    elif used:
        pix = pixels[:, positions_p]
        index = np.where(pix >= 0, structure.index[np.maximum(pix, 0), positions_k[None, :]],
                         -(1 + positions_p * structure.k + positions_k)[None, :])
        value_index, slot_of = _unique_columns(index)
    else:
        slot_of = np.zeros(0, np.int64)
        value_index = np.full((pixels.shape[0], 1), -1, np.int64)
    if design.dn == "tree":
        value_index, slot_of = _tree_positions(design, value_index, slot_of)
    per_step = max(1, -(-value_index.shape[1] // bw))
    if per_step > 255:
        raise UnsupportedLayer(f"a step needs {per_step} beats, more than 255")

    # the map (see gateware.py): per multiplier its operand's position in the step | VN end << 7, per lane
    # where it collects, the used-multiplier count, and for the reference network each multiplier's lane
    config = np.zeros(design.map_bytes, dtype=np.uint8)
    ends = config[:n_mult]
    ends[:] = 0x80                           # a multiplier outside every VN ends its own (unused) one
    ends[np.arange(used) if where is None else where] = slot_of     # slot_of < used <= multipliers <= 128
    per_lane = lane_bytes(design.reach)
    at = n_mult + per_lane * design.rn_bw
    lanes = config[n_mult:at].reshape(design.rn_bw, per_lane)
    config[at:at + 2] = (used & 0xFF, used >> 8)
    lane_of = config[at + 2:] if design.rn == "seq" else config[:0]
    if design.rn == "art":
        nodes, collect = art.configure(n_mult, spans)
        config[at + 2:] = np.frombuffer(nodes, np.uint8)
    for lane, (a, b) in enumerate(spans):
        if b < a:
            continue                         # an empty VN (no non-zero weight in this chunk): its lane adds 0
        ends[b] |= 0x80                      # the VN ends at its last multiplier
        if lane_of.size:
            lane_of[a:b + 1] = lane | 0x80
        if design.rn == "art":
            level, node = collect[lane]      # where the tree completes it (art.py)
            lanes[lane] = (node, level | 0x80)
            continue
        level = (a ^ b).bit_length()         # the sum is whole at the lowest common ancestor of a and b
        if design.reach:
            # region_spans put the VN over its lane's region: the node is the region's or an ancestor
            assert reaches(lane, level, a >> level, n_mult, design.reach), (lane, a, b)
            local = (a >> level) & ((design.reach >> level) - 1) if (1 << level) <= design.reach else 0
            lanes[lane] = (local | level << 4 | 0x80,)
        else:
            lanes[lane] = (a >> level, level | 0x80)
    return value_index, per_step, config.tobytes()


def _tree_positions(design, value_index, slot_of):
    """The distribution tree's positions: multiplier ``i`` hangs on tree ``i // (N / DN_BW)``, fed by that lane
    of every beat, so each tree gets the distinct values its multipliers need (numbered by first use), one a
    beat: a step takes as many beats as the busiest tree needs values, and a value several trees need is sent
    on each. Returns (value index [S, beats * DN_BW], -1 where a lane idles; position of every used multiplier)."""
    bw, per_tree = design.dn_bw, design.multipliers // design.dn_bw
    positions = np.zeros_like(slot_of)
    columns = {}
    for tree in range(-(-slot_of.size // per_tree)):
        part = slot_of[tree * per_tree:(tree + 1) * per_tree]
        distinct, first, inverse = np.unique(part, return_index=True, return_inverse=True)
        order = np.argsort(first)
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        positions[tree * per_tree:(tree + 1) * per_tree] = rank[inverse.reshape(-1)] * bw + tree
        for r, value in zip(rank, distinct):
            columns[int(r) * bw + tree] = int(value)
    width = (max(columns) + 1) if columns else 1
    out = np.full((value_index.shape[0], width), -1, np.int64)
    for position, value in columns.items():
        out[:, position] = value_index[:, value]
    return out, positions


def _fold(design, structure, mapping, group, ks_of, pixels, first, layouts, key):
    """One stationary configuration for channels ``group`` and k-chunk ``ks_of`` over steps ``pixels``.

    ``layouts`` caches the placement-dependent part under ``key`` (None: do not cache): in a dense
    mapping it depends on the group's size, not on which channels it holds.
    """
    positions_p, positions_k, channels, spans, where = _placement(structure, mapping, group, ks_of, design)
    layout = layouts.get(key) if key is not None else None
    if layout is None:
        layout = _layout(design, structure, positions_p, positions_k, spans, pixels, where)
        if key is not None:
            layouts[key] = layout
    value_index, per_step, map_bytes = layout
    w = np.zeros(design.multipliers, dtype=np.int8)
    w[where] = np.where(positions_k >= 0, structure.weights[positions_k, channels], 0)
    return Fold(map_bytes, w, value_index, per_step, positions_k.size, first)


def _fold_summary(design, structure, mapping, group, chunks, step_pixels, layouts, shared, s0):
    """A tile's folds in brief: (first map, last map, map changes after the first fold, beats per step summed
    over folds, multipliers used summed over folds, folds); cached where layouts are shared."""
    key = ("summary", len(group), s0)
    if shared and key in layouts:
        return layouts[key]
    maps, per_step, used = [], 0, 0
    for index, ks_of in enumerate(chunks):
        fold = _fold(design, structure, mapping, group, ks_of, step_pixels, index == 0, layouts,
                     (len(group), index, s0) if shared else None)
        maps.append(fold.map_bytes)
        per_step += fold.per_step
        used += fold.used
    changes = sum(1 for i in range(1, len(maps)) if maps[i] != maps[i - 1])
    summary = (maps[0], maps[-1], changes, per_step, used, len(maps))
    if shared:
        layouts[key] = summary
    return summary


def compile_program(design, structure, mapping, skeleton=False):
    """Tiles, folds, commands and input runs of ``structure`` under ``mapping`` (checked first).

    With ``skeleton`` only the runs and totals are made (no weights, no commands), in time independent
    of the number of folds where a dense mapping's folds share one layout: what the cycle model and
    so the mapping search need.
    """
    check_mapping(design, structure, mapping)
    pixels = _pixel_steps(structure, mapping)
    steps_total = pixels.shape[0]
    n = structure.n
    tiles, commands, runs = [], [], []
    macs = config_bytes = data_bytes = 0
    current_map = current_params = current_weights = None     # what the core holds: map bytes, group, fold
    beat = design.beat_bytes
    tile_steps = mapping.steps_per_tile(design)
    layouts = {}
    # Dense folds of equal size share their operand layout (convolutions: it does not depend on the
    # channels). Depthwise folds share its shape (slots, map), not its indices: only skeletons reuse it.
    shared = not mapping.sparse and (structure.kind != "depthwise" or (
        skeleton and mapping.channels % structure.depth_multiplier == 0))
    dense_chunks = None if mapping.sparse else _chunks(structure, mapping)
    for c0, group in enumerate(channel_groups(structure, mapping)):
        chunks = _sparse_chunks(structure, mapping, design, group) if mapping.sparse else dense_chunks
        for s0 in range(0, steps_total, tile_steps):
            step_pixels = pixels[s0:s0 + tile_steps]
            steps = step_pixels.shape[0]
            send_params = c0 != current_params
            current_params = c0
            tile_lanes = mapping.rows * len(group)
            param_beats, word_beats = design.param_beats(tile_lanes), design.out_beats(tile_lanes)
            beats = (1 + param_beats) * send_params
            config_bytes += param_beats * beat * send_params
            if skeleton:
                first_map, last_map, changes, per_step_total, used_total, folds = _fold_summary(
                    design, structure, mapping, group, chunks, step_pixels, layouts, shared, s0)
                maps = changes + (first_map != current_map)
                weight_loads = folds - ((c0, 0) == current_weights)
                current_map, current_weights = last_map, (c0, folds - 1)
                beats += (maps * (1 + design.map_beats) + weight_loads * design.weight_beats + folds
                          + steps * per_step_total)
                macs += steps * used_total
                config_bytes += (maps * design.map_beats + weight_loads * design.weight_beats) * beat
                data_bytes += steps * per_step_total * beat
                runs.append(Run(beats + 1, steps, word_beats))
                continue
            lanes = np.full(design.rn_bw, -1, np.int64)
            out_index = np.full((steps, design.rn_bw), -1, np.int64)
            for p in range(mapping.rows):
                for ci, channel in enumerate(group):
                    lane = p * len(group) + ci
                    lanes[lane] = channel
                    out_index[:, lane] = np.where(step_pixels[:, p] >= 0, step_pixels[:, p] * n + channel, -1)
            if send_params:
                commands.append(Command("PARAMS", param_beats, param_beats))
            folds = []
            for index, ks_of in enumerate(chunks):
                key = (len(group), index, s0) if shared else None
                fold = _fold(design, structure, mapping, group, ks_of, step_pixels, index == 0, layouts, key)
                if fold.map_bytes != current_map:
                    commands.append(Command("MAP", design.map_beats))
                    current_map = fold.map_bytes
                    config_bytes += design.map_beats * beat
                    beats += 1 + design.map_beats
                send_weights = (c0, index) != current_weights
                if send_weights:
                    commands.append(Command("WEIGHTS", design.weight_beats, steps, fold.per_step, first=fold.first))
                    current_weights = (c0, index)
                    beats += design.weight_beats
                    config_bytes += design.weight_beats * beat
                commands.append(Command("STEPS", steps * fold.per_step, steps, fold.per_step, first=fold.first,
                                        headless=send_weights))
                beats += 1 + steps * fold.per_step
                macs += fold.used * steps
                data_bytes += steps * fold.per_step * beat
                folds.append(fold)
            commands.append(Command("READOUT", 0, steps, word_beats))
            runs.append(Run(beats + 1, steps, word_beats))
            tiles.append(Tile(lanes, folds, out_index, tile_lanes))
    runs[-1].last = True
    if commands:
        commands[-1].last = True
    return Program(tiles, commands, runs, macs, config_bytes, data_bytes, structure.out_shape,
                   int(np.prod(structure.out_shape)))


# ---- the beat stream ----

def requant_words(gemm):
    """Per-channel (bias, 54-bit multiplier, 10-bit packed shifts) as PARAMS carries them (int64 [3, N])."""
    if gemm.rounding == DOUBLE:
        shifts = np.maximum(gemm.shift, 0) | (np.maximum(-gemm.shift, 0) << 5)
        return np.stack([gemm.bias, gemm.multiplier, shifts])
    mantissa, exponent = float_scale_fields(gemm.scale)
    return np.stack([gemm.bias, mantissa, exponent])


def _param_bytes(words):
    """PARAMS payload of the lanes' (bias, multiplier, shifts) columns ``words`` [3, lanes]: 12 bytes a lane."""
    out = bytearray()
    for bias, multiplier, shifts in words.T.tolist():
        value = (bias & 0xFFFF_FFFF) | (multiplier & ((1 << 54) - 1)) << 32 | (shifts & 0x3FF) << 86
        out += value.to_bytes(PARAM_BYTES_PER_LANE, "little")
    return np.frombuffer(bytes(out), np.uint8)


def _header(design, opcode, count=0, per_step=0, first=False, last=False):
    word = opcode | (int(first) << 3) | (int(last) << 4) | (count << 8) | (per_step << 24)
    out = np.zeros(design.beat_bytes, np.uint8)
    out[:4] = np.frombuffer(struct.pack("<I", word), np.uint8)
    return out


def _padded(design, data):
    data = np.asarray(data, dtype=np.uint8).reshape(-1)
    out = np.zeros(design.beats(data.size) * design.beat_bytes, np.uint8)
    out[:data.size] = data
    return out


def pack_stream(design, program, gemm, source):
    """The whole input stream of ``program`` (uint8), with the data of ``source`` and the layer's parameters."""
    words = requant_words(gemm)
    parts = []
    current_map = None
    commands = iter(program.commands)
    for tile in program.tiles:
        cmd = next(commands)
        if cmd.op == "PARAMS":
            lane_words = np.zeros((3, tile.lanes), dtype=np.int64)
            used = tile.params_lanes[:tile.lanes] >= 0
            lane_words[:, used] = words[:, tile.params_lanes[:tile.lanes][used]]
            parts += [_header(design, Opcode.PARAMS, cmd.count), _padded(design, _param_bytes(lane_words))]
            cmd = next(commands)
        for fold in tile.folds:
            if cmd.op == "MAP":
                parts += [_header(design, Opcode.MAP), _padded(design, np.frombuffer(fold.map_bytes, np.uint8))]
                current_map = fold.map_bytes
                cmd = next(commands)
            assert fold.map_bytes == current_map
            if cmd.op == "WEIGHTS":
                parts += [_header(design, Opcode.WEIGHTS, cmd.count, cmd.per_step, first=cmd.first),
                          _padded(design, fold.weights.view(np.uint8))]
                cmd = next(commands)
            steps = fold.value_index.shape[0]
            values = np.zeros((steps, fold.per_step * design.beat_bytes), np.int8)
            index = fold.value_index
            values[:, :index.shape[1]] = np.where(index >= 0, source[np.maximum(index, 0)], 0)
            if not cmd.headless:
                parts.append(_header(design, Opcode.STEPS, steps, fold.per_step, first=fold.first))
            parts.append(values.view(np.uint8).reshape(-1))
            cmd = next(commands)
        assert cmd.op == "READOUT"
        parts.append(_header(design, Opcode.READOUT, cmd.count, cmd.per_step, last=cmd.last))
    return np.concatenate(parts)


def output_bytes(design, program):
    return sum(run.words * run.word_beats for run in program.runs) * design.beat_bytes


def unpack_output(design, program, raw):
    """The flat int8 output of ``program`` from the received stream."""
    out = np.zeros(program.out_size, np.int8)
    at = 0
    for tile in program.tiles:
        steps = tile.out_index.shape[0]
        word = design.out_beats(tile.lanes) * design.beat_bytes
        block = raw[at:at + steps * word].reshape(steps, word)[:, :tile.lanes].view(np.int8)
        at += steps * word
        index = tile.out_index[:, :tile.lanes]
        keep = index >= 0
        out[index[keep]] = block[keep]
    return out.reshape(program.out_shape)
