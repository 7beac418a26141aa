"""Mapping search: each layer's mapping chosen by the cycle model, cached by layer signature.

The candidates are the legal tilings from a small set of tile sizes per
dimension (pixel boxes that divide the output, power-of-two and balanced
channel and k-chunk counts, and sparse mappings when the weights have
zeros: the most channels the lanes allow, each fold's beats a step capped or
not, channels grouped consecutively or by shared non-zero k): tens to hundreds
per layer, all ranked by a fast estimate of the cycle model (``quick_cycles``,
no compiling); the best few are compiled and costed by the exact model (small
layers: all of them), and the cheapest wins (ties: fewer configuration bytes).
"""

from dataclasses import replace

import numpy as np

from ...driver.device import DmaTiming
from ...errors import UnsupportedLayer
from . import compiler, cost
from .gateware import readout_delay, write_delay

__all__ = ["candidates", "best_mapping"]

#: the DMA timing mappings are chosen for (the project's default)
SEARCH_DMA = DmaTiming(8, 0)
#: how many of the best-ranked candidates are compiled and costed exactly
EXACT = 4
#: layers with at most this many MACs have every candidate costed exactly
EXACT_ALL_MACS = 1 << 22
#: shorter tiles tried besides the accumulation buffer's depth
TILE_STEPS = (16, 32, 64, 128)
#: sparse folds' beats a step tried (None: folds fill the multipliers with consecutive k)
STEP_BEATS = (None, 1, 2, 3, 4, 6, 8)
#: sparse candidates costed exactly besides the dense ones (the best by the fast estimate, which counts
#: a sparse program's beats fold by fold), and the layers small enough to have all of them costed
EXACT_SPARSE = 8
EXACT_SPARSE_ALL_MACS = 1 << 18


def _balanced(total, most):
    """Chunk sizes that split ``total`` into equal-ish parts of at most ``most``: a few, largest first."""
    sizes = set()
    for parts in range(-(-total // most), total + 1):
        sizes.add(-(-total // parts))
        if len(sizes) >= 3:
            break
    return sorted(sizes, reverse=True)


def _powers(limit):
    out, v = [], 1
    while v <= limit:
        out.append(v)
        v *= 2
    return out


def _channel_options(n, most):
    """Channels per fold for ``n`` channels and at most ``most`` lanes: balanced splits, and every count up to
    ``most`` when that is small (one channel per fold leaves the lanes to pixels)."""
    if most < 1:
        return []
    options = set(_balanced(n, most))
    if most <= 16:
        options.update(range(1, min(n, most) + 1))
    return sorted(options)


def _divisors(n, limit):
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def candidates(design, structure, sparse_too):
    """Legal-looking mappings to try for ``structure`` (legality is checked when compiling), each also
    with shorter tiles (a shorter last readout, more READOUT commands)."""
    out = []
    for mapping in _base_candidates(design, structure, sparse_too):
        out.append(mapping)
        steps = -(-structure.m // mapping.rows)
        for tile in TILE_STEPS:
            if tile < min(steps, design.acc_depth):
                out.append(replace(mapping, tile_steps=tile))
    return out


def _sparse_candidates(design, structure, rows, box, chunk):
    """Sparse mappings of ``rows`` pixels (``box``): the most channels the lanes allow (a streamed value
    feeds the fold's channels that have a non-zero weight at its k), each fold's beats a step capped or
    not, channels grouped consecutively or by shared non-zero k."""
    out = []
    most = design.rn_bw // rows
    # the most channels, and a quarter as many: when the layer is dense enough that a few k over many
    # channels fill the multipliers, a step brings fewer values than a beat carries
    options = _balanced(structure.n, most)[:2] + (_balanced(structure.n, most // 4)[:1] if most >= 4 else [])
    for channels in sorted(set(options), reverse=True):
        for step_beats in STEP_BEATS:
            if step_beats is not None and step_beats * design.dn_bw < rows:
                continue
            regroups = (False, True) if compiler.regroups(structure, channels) else (False,)
            for regroup in regroups:
                out.append(compiler.Mapping(rows, channels, chunk, box, True, step_beats=step_beats,
                                            regroup=regroup))
    return out


def _base_candidates(design, structure, sparse_too):
    n_mult, lanes = design.multipliers, design.rn_bw
    out = []
    if structure.kind == "gemm":
        rows_options = sorted(set(_powers(min(lanes, structure.m)) + ([structure.m] if structure.m <= lanes else [])))
        for rows in rows_options:
            for channels in _channel_options(structure.n, lanes // rows):
                most = n_mult // (rows * channels)
                if most < 1:
                    continue
                chunks = set(_balanced(structure.k, most)[:2] + [min(most, structure.k)])
                if structure.operand_k is not None:
                    # whole source columns per chunk (a column's terms share its operand): the same splits in
                    # columns, times the column's terms
                    repeat = structure.k // structure.row_length
                    if most >= repeat:
                        chunks |= {repeat * size for size in _balanced(structure.row_length, most // repeat)[:2]}
                for chunk in sorted(chunks):
                    out.append(compiler.Mapping(rows, channels, (chunk,), None, False))
            if sparse_too:
                out += _sparse_candidates(design, structure, rows, None, (1,))
        return out
    _, oh, ow = structure.geometry
    kh, kw, c = structure.kernel
    boxes = [(ty, tx) for ty in _divisors(oh, lanes) for tx in _divisors(ow, lanes) if ty * tx <= lanes]
    boxes = sorted(boxes, key=lambda b: -b[0] * b[1]) + [(1, 1)]
    for ty, tx in dict.fromkeys(boxes):
        rows = ty * tx
        if sparse_too and structure.kind == "conv":
            out += _sparse_candidates(design, structure, rows, (ty, tx), (1, 1, 1))
        for channels in _channel_options(structure.n, lanes // rows):
            most = n_mult // (rows * channels)
            if most < 1:
                continue
            if structure.kind == "conv":
                chunks = []
                for tr, ts in ((kh, kw), (1, kw), (1, 1)):
                    if tr * ts <= most:
                        for tc in _balanced(c, most // (tr * ts))[:1]:
                            chunks.append((tr, ts, tc))
            else:
                chunks = [(tr, ts) for tr, ts in ((kh, kw), (1, kw), (1, 1)) if tr * ts <= most]
            for chunk in dict.fromkeys(chunks):
                out.append(compiler.Mapping(rows, channels, chunk, (ty, tx), False))
    return out


def _distinct_per_step(structure, mapping, ks):
    """Distinct operands one step brings for k-chunk ``ks`` (the same for every channel of a dense fold)."""
    if structure.kind == "gemm":
        # a BATCH_MATMUL's repeated source columns share their operand
        return mapping.rows * len(np.unique(structure.source_columns(ks)))
    kh, kw, c = structure.kernel
    if mapping.rows == 1 or (kh, kw) == (1, 1):
        # one pixel, or a 1x1 kernel: every (pixel, k) another input value (at most, at the padding)
        return mapping.rows * len(ks)
    r, rest = np.divmod(np.asarray(ks), kw * c)
    s, channel = np.divmod(rest, c)
    # the count is the same for a chunk moved across the filter: key it by the chunk's relative taps
    relative = (r - r.min(initial=0), s - s.min(initial=0), channel - channel.min(initial=0))
    key = (mapping.box, structure.stride, structure.dilation, np.stack(relative).tobytes(), len(ks))
    if key not in _DISTINCT:
        # an interior box: input coordinates (y, x, c) of every (pixel, k); distinct ones are sent once
        ty, tx = mapping.box
        dy, dx = np.meshgrid(np.arange(ty), np.arange(tx), indexing="ij")
        y = dy.reshape(-1, 1) * structure.stride[0] + relative[0][None, :] * structure.dilation[0]
        x = dx.reshape(-1, 1) * structure.stride[1] + relative[1][None, :] * structure.dilation[1]
        ch = np.broadcast_to(relative[2], y.shape)
        _DISTINCT[key] = len(np.unique(np.stack([y.reshape(-1), x.reshape(-1), ch.reshape(-1)]), axis=1).T)
    return _DISTINCT[key]


_DISTINCT = {}

#: steps of the first tile the distribution tree's beats per step are estimated on
TREE_SAMPLE_STEPS = 64


def _tree_beats(design, structure, mapping, group, ks_of, pixels):
    """Beats per step of a fold on the distribution tree (each tree takes the distinct values of its
    multipliers, one a beat): the compiler's own layout over the sample steps ``pixels``."""
    positions_p, positions_k, _, spans, _ = compiler._placement(structure, mapping, group, ks_of, design)
    _, per_step, _ = compiler._layout(design, structure, positions_p, positions_k, spans, pixels)
    return per_step


def quick_cycles(design, structure, mapping, dma=SEARCH_DMA):
    """A fast estimate of the cycle model (no compiling): what the search ranks candidates by.

    Per channel group it counts each tile's input beats (parameters and a single fold's weights only
    when they change, as the compiler sends them) no faster than the DMA delivers them, and lets each
    tile's readout overlap the next tile's input (the two accumulation banks); the last readout adds.
    The best few are then compiled and costed exactly.
    """
    compiler.check_mapping(design, structure, mapping)
    slow = max(1.0, design.beat_bytes / dma.bytes_per_cycle)
    steps = -(-structure.m // mapping.rows)
    tile = mapping.steps_per_tile(design)
    tile_sizes = [tile] * (steps // tile) + ([steps % tile] if steps % tile else [])
    groups = compiler.channel_groups(structure, mapping)
    sample = compiler._pixel_steps(structure, mapping)[:min(tile, TREE_SAMPLE_STEPS)] if design.dn == "tree" else None
    if not mapping.sparse:
        # a dense fold's operands do not depend on which channels it holds: cost one group, count them all
        chunks = compiler._chunks(structure, mapping)
        if design.dn == "tree":
            per_step = [_tree_beats(design, structure, mapping, groups[0], ks_of, sample) for ks_of in chunks]
        else:
            per_step = [-(-_distinct_per_step(structure, mapping, ks_of(0)) // design.dn_bw) for ks_of in chunks]
        maps = 1 if len(set(per_step)) == 1 else len(chunks)
        shapes = [(per_step, maps, len(groups))]
    else:
        shapes = []
        for group in groups:
            chunks = compiler._sparse_chunks(structure, mapping, design, group)
            per_step = []
            for ks_of in chunks:
                if design.dn == "tree":
                    per_step.append(_tree_beats(design, structure, mapping, group, ks_of, sample))
                    continue
                # a sparse fold's k all have a non-zero weight in the group
                per_step.append(max(1, -(-_distinct_per_step(structure, mapping, ks_of(group[0])) // design.dn_bw)))
            shapes.append((per_step, len(chunks), 1))
    drain = write_delay(design.multipliers, design.dn_depth) + readout_delay() + 2
    total, readout = 0.0, 0
    for shape_index, (per_step, maps, count) in enumerate(shapes):
        folds = len(per_step)
        lanes = mapping.rows * len(groups[shape_index if mapping.sparse else 0])
        for group_index in range(count):
            for index, size in enumerate(tile_sizes):
                beats = 2 + folds + size * sum(per_step)
                if index == 0:
                    beats += design.param_beats(lanes) + 1 + (design.map_beats + 1) * (maps if group_index == 0 or maps > 1
                                                                                  else 0)
                elif maps > 1:
                    beats += maps * (design.map_beats + 1)
                if index == 0 or folds > 1:
                    beats += folds * (design.weight_beats + 1)
                total += max(beats * slow, readout)
                readout = size * design.out_beats(lanes)
    return total + readout + drain


def best_mapping(design, structure, dma=SEARCH_DMA):
    """The mapping with the fewest model cycles over :func:`candidates` (ties: fewer configuration bytes).

    Raises :class:`UnsupportedLayer` with a reason when no candidate is legal.
    """
    sparse_too = (structure.kind != "depthwise" and not structure.activation_weights
                  and np.mean(structure.weights == 0) >= 0.25)
    best, reasons = None, []
    ranked = []
    for mapping in candidates(design, structure, sparse_too):
        try:
            ranked.append((quick_cycles(design, structure, mapping, dma), mapping))
        except UnsupportedLayer as error:
            reasons.append(str(error))
    ranked.sort(key=lambda item: item[0])
    if structure.m * structure.k * structure.n <= EXACT_ALL_MACS:
        sparse = [item for item in ranked if item[1].sparse]
        small = structure.m * structure.k * structure.n <= EXACT_SPARSE_ALL_MACS
        chosen = [item for item in ranked if not item[1].sparse] + (sparse if small else sparse[:EXACT_SPARSE])
    else:
        chosen = ranked[:EXACT]
    for _, mapping in chosen:
        try:
            program = compiler.compile_program(design, structure, mapping, skeleton=True)
        except UnsupportedLayer as error:
            reasons.append(str(error))
            continue
        score = (cost.program_cycles(design, program, dma), program.config_bytes)
        if best is None or score < best[0]:
            best = (score, mapping)
    if best is None:
        raise UnsupportedLayer(f"no legal flexarray mapping: {reasons[0] if reasons else 'no candidates'}")
    return best[1]
