"""Closed-form cycle model of the GEMM core (placeholder refined against RTL below)."""

from .gateware import word_beats
from .driver import plan_jobs


def job_cycles(params, m_tiles, n_tiles, k, dma):
    rows, cols, width = params["rows"], params["cols"], params["data_width"]
    beat = width // 8
    a_load = m_tiles * k * word_beats(rows, width) * beat // dma.bytes_per_cycle
    compute = n_tiles * m_tiles * k
    return dma.latency + a_load + compute + rows + cols + rows


def gemm_cycles(params, shape, dma):
    m, n, k = shape
    n_tiles = -(-n // params["cols"])
    return sum(job_cycles(params, mt, n_tiles, k, dma) for _, mt in plan_jobs(m, k, params["rows"], params["a_depth"]))
