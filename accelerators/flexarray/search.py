"""Mapping search: each layer's mapping chosen by the cycle model, cached by layer signature.

The candidates are the legal tilings from a small set of tile sizes per
dimension (every pixel box that divides the output, power-of-two and balanced
channel and k-chunk counts, and the sparse variants when the weights have
zeros); each is compiled and costed in closed form, and the cheapest wins
(ties: fewer configuration bytes). The space per layer is tens of mappings, so
it is searched exhaustively.
"""

import numpy as np

from ...driver.device import DmaTiming
from ...errors import UnsupportedLayer
from . import compiler, cost

__all__ = ["candidates", "best_mapping"]

#: the DMA timing mappings are chosen for (the project's default)
SEARCH_DMA = DmaTiming(8, 0)


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


def _divisors(n, limit):
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def candidates(design, structure, sparse_too):
    """Legal-looking mappings to try for ``structure`` (legality is checked when compiling)."""
    n_mult, lanes = design.multipliers, design.rn_bw
    out = []
    sparse_options = (False, True) if sparse_too else (False,)
    if structure.kind == "gemm":
        rows_options = sorted(set(_powers(min(lanes, structure.m)) + ([structure.m] if structure.m <= lanes else [])))
        for rows in rows_options:
            for channels in sorted(set(_balanced(structure.n, lanes // rows))):
                if rows * channels > lanes:
                    continue
                most = n_mult // (rows * channels)
                if most < 1:
                    continue
                for chunk in _balanced(structure.k, most)[:2]:
                    for sparse in sparse_options:
                        out.append(compiler.Mapping(rows, channels, (chunk,), None, sparse))
        return out
    _, oh, ow = structure.geometry
    kh, kw, c = structure.kernel
    boxes = [(ty, tx) for ty in _divisors(oh, lanes) for tx in _divisors(ow, lanes) if ty * tx <= lanes]
    boxes = sorted(boxes, key=lambda b: -b[0] * b[1])[:6] + [(1, 1)]
    for ty, tx in dict.fromkeys(boxes):
        rows = ty * tx
        for channels in sorted(set(_balanced(structure.n, lanes // rows))):
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
                for sparse in sparse_options:
                    out.append(compiler.Mapping(rows, channels, chunk, (ty, tx), sparse))
    return out


def _lower_bound(design, structure, mapping):
    """Cycles no program of ``mapping`` can beat: one per step of every fold (dense), or of every group."""
    compiler.check_mapping(design, structure, mapping)
    steps = -(-structure.m // mapping.rows)
    groups = -(-structure.n // mapping.channels)
    if mapping.sparse:
        return groups * steps
    # a step brings at least one pixel's operands (distinct inputs); each fold loads its weights
    per_step = -(-int(np.prod(mapping.chunk)) // design.dn_bw)
    folds = groups * len(compiler._chunks(structure, mapping))
    return folds * (steps * per_step + design.weight_beats + 2)


def best_mapping(design, structure, params=None, dma=SEARCH_DMA):
    """The mapping with the fewest model cycles over :func:`candidates` (ties: fewer configuration bytes).

    Raises :class:`UnsupportedLayer` with a reason when no candidate is legal.
    """
    sparse_too = structure.kind != "depthwise" and np.mean(structure.weights == 0) >= 0.25
    best, reasons = None, []
    bounded = []
    for mapping in candidates(design, structure, sparse_too):
        try:
            bounded.append((_lower_bound(design, structure, mapping), mapping))
        except UnsupportedLayer as error:
            reasons.append(str(error))
    bounded.sort(key=lambda item: item[0])
    for bound, mapping in bounded:
        if best is not None and bound >= best[0][0]:
            break                       # every step of every fold takes a cycle: none of the rest can win
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
