"""Per-layer model reports shared by the TFLite and TVM paths and the board: records, table, totals, plot.

The board-side bundle carries this module (with :mod:`.tables`), so a model run
on a board prints the report ``accelkit run`` prints.
"""

from dataclasses import dataclass, field

from .tables import console, table

__all__ = ["LayerRecord", "totals", "print_report", "save_plot"]


@dataclass
class LayerRecord:
    """One operator of the model in the report."""

    index: int
    op: str
    inputs: list
    output: list
    macs: int
    where: str                 # "accelerator" or "cpu"
    reason: str = ""           # why it stayed on the CPU
    cycles: int = 0
    utilization: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    jobs: int = 0
    stall_cycles: int = 0
    bit_exact: bool | None = None
    max_difference: int | None = None
    extra: dict = field(default_factory=dict)

    def take_stats(self, stats):
        """Fill the accelerator's figures in from the LayerStats of running the layer."""
        self.cycles, self.utilization = stats.cycles, stats.utilization
        self.bytes_in, self.bytes_out, self.jobs = stats.bytes_in, stats.bytes_out, stats.jobs
        self.stall_cycles = stats.in_stall_cycles + stats.out_stall_cycles
        self.extra["busy_cycles"] = stats.busy_cycles
        self.extra["gemm_shape"] = [stats.shape.get("m"), stats.shape.get("n"), stats.shape.get("k")]
        if "weight_bytes" in stats.extra:
            self.extra["weight_bytes"] = stats.extra["weight_bytes"]

    def as_dict(self, clock_hz):
        """The record as JSON; ``time_us`` is None when ``clock_hz`` is (an unmeasured clock)."""
        record = {k: v for k, v in self.__dict__.items() if k != "extra"}
        record["time_us"] = None if clock_hz is None else self.cycles / clock_hz * 1e6
        record.update(self.extra)
        return record


def totals(records, clock_hz, clock_source=None):
    """Whole-model figures from per-layer records (dicts as written to JSON).

    ``clock_hz`` None means the clock is unmeasured: the latency is None then.
    """
    macs = sum(r["macs"] for r in records)
    offloaded = [r for r in records if r["where"] == "accelerator"]
    offloaded_macs = sum(r["macs"] for r in offloaded)
    cycles = sum(r["cycles"] for r in offloaded)
    return {
        "layers": len(records), "layers_offloaded": len(offloaded), "macs": macs, "macs_offloaded": offloaded_macs,
        "share_of_macs_offloaded": offloaded_macs / macs if macs else 0.0,
        "accelerator_cycles": cycles, "clock_hz": clock_hz, "clock_source": clock_source,
        "estimated_accelerator_latency_ms": None if clock_hz is None else cycles / clock_hz * 1e3,
        "bytes_in": sum(r["bytes_in"] for r in offloaded), "bytes_out": sum(r["bytes_out"] for r in offloaded),
    }


def print_report(title, records, summary, compare=False):
    columns = ["#", "op", "output", "MACs", "where", "cycles", "util.", "time µs", "bytes in", "bytes out"]
    if compare:
        columns.append("bit-exact")
    rows = []
    for r in records:
        where = r.get("accelerator", "accelerator") if r["where"] == "accelerator" else f"CPU: {r['reason']}"
        row = [r["index"], r["op"], "x".join(map(str, r["output"][0])) if r["output"] else "", r["macs"], where,
               r["cycles"] or "", r["utilization"] or "",
               round(r["time_us"], 1) if r["cycles"] and r["time_us"] is not None else "",
               r["bytes_in"] or "", r["bytes_out"] or ""]
        if compare:
            row.append("" if r.get("bit_exact") is None else
                       ("yes" if r["bit_exact"] else f"NO (max diff {r['max_difference']})"))
        rows.append(row)
    console.print(table(title, columns, rows))
    if summary["clock_hz"] is None:
        timing = "clock unmeasured, time not shown"
    else:
        source = f" ({summary['clock_source']})" if summary.get("clock_source") else ""
        timing = (f"-> {summary['estimated_accelerator_latency_ms']:.3f} ms at {summary['clock_hz'] / 1e6:g} MHz"
                  f"{source}")
    console.print(
        f"accelerator cycles {summary['accelerator_cycles']:,} {timing}; MACs offloaded {summary['macs_offloaded']:,} of {summary['macs']:,} "
        f"({summary['share_of_macs_offloaded']:.1%}); layers offloaded {summary['layers_offloaded']} of "
        f"{summary['layers']}", highlight=False)


def save_plot(path, records, title):
    """Bar chart of per-layer accelerator cycles, saved as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    offloaded = [r for r in records if r["where"] == "accelerator"]
    figure, axis = plt.subplots(figsize=(max(6, 0.35 * len(offloaded) + 2), 4))
    axis.bar([f"{r['index']}" for r in offloaded], [r["cycles"] for r in offloaded], color="tab:blue")
    axis.set_xlabel("layer (operator index)")
    axis.set_ylabel("accelerator cycles")
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    from .output import replacing     # only where results are written (not on a board)
    try:
        with replacing(path) as handle:
            figure.savefig(handle, dpi=120, format="png")
    finally:
        plt.close(figure)
