"""An analytic resource model of a design point, calibrated on Yosys and checked against it.

One Yosys run of a whole design takes a minute or more here, far too long for
every trial of a search, so trials take their LUT, FF, DSP and BRAM figures
from a model:

* block RAM from first principles: each memory of the design (its width and
  depth, from the parameters) is packed into RAMB36/RAMB18 aspect ratios the
  way 7-series and UltraScale block RAMs allow, and a memory of 64 words or
  fewer goes to distributed RAM (RAM64M: 3 bits x 64 words per 4 LUTs); a
  memory with two read ports takes a block RAM copy per port;
* LUT, FF and DSP as linear functions of a few features of the parameters
  (PEs, array edge, stream width), with coefficients fitted by least squares to
  Yosys ``synth_xilinx`` runs at measured points (``calibration.json``).

:func:`calibration_report` gives the model's error against those Yosys runs
(leave-one-out, so a point never predicts itself). Models exist for the
accelerators listed in ``MODELS``; others are refused with that list.
"""

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from math import ceil
from pathlib import Path

import numpy as np

from ...errors import ParameterError

__all__ = ["MODELS", "ResourceModel", "resource_model", "bram36_for", "calibration_report", "CALIBRATION_FILE",
           "record_calibration", "FmaxModel", "fmax_model", "record_fmax", "remember_fmax"]

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
RESOURCES = ("lut", "ff", "dsp", "bram36")

#: RAMB36 aspect ratios (depth, width) and RAMB18 ones, the widths including parity bits
_RAMB36 = ((512, 72), (1024, 36), (2048, 18), (4096, 9), (8192, 4), (16384, 2), (32768, 1))
_RAMB18 = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
#: memories this shallow go to distributed RAM (what Yosys' memory_libmap prefers for them)
_LUTRAM_DEPTH = 64


def bram36_for(width, depth):
    """(RAMB36 equivalents, LUTs as distributed RAM) of one ``width`` x ``depth`` memory."""
    if depth <= _LUTRAM_DEPTH:
        return 0.0, 4 * ceil(width / 3) * ceil(depth / 64)
    best = min(ceil(width / w) * ceil(depth / d) for d, w in _RAMB36)
    halves = min(ceil(width / w) * ceil(depth / d) for d, w in _RAMB18)
    return min(float(best), halves / 2), 0


def _memory_cost(width, depth, read_ports=1):
    """(RAMB36 equivalents, LUTs as distributed RAM) of a memory with ``read_ports`` read ports besides its
    write port: block RAM holds a copy per read port; distributed RAM serves up to three reads per primitive
    (RAM64M: 1 bit per read of 64 words; RAM32M: 2 bits of 32 words), which is how Yosys mapped flexarray's
    two-read accumulation buffer (its calibration points)."""
    bram, lutram = bram36_for(width, depth)
    if read_ports == 1:
        return bram, lutram
    if depth > _LUTRAM_DEPTH:
        return bram * read_ports, 0
    per_primitive = 6 if depth <= 32 else 3
    return 0.0, 4 * ceil(width * read_ports / per_primitive)


def _gemm_memories(p):
    """(width, depth) of the GEMM core's memories: A buffer, B buffer (two halves), output row buffer."""
    from ...accelerators.gemm.layout import WeightLayout
    layout = WeightLayout.from_params(p)
    return [(8 * p["rows"], p["a_depth"]), (layout.row_bits, 2 * p["k_max"] // layout.words_per_row),
            (8 * p["cols"], p["rows"])]


def _gemm_features(p):
    """Features in the order they join a fit: a column's requantizer and output lane (the largest share: 8
    DSP48 and over a thousand LUTs each in the Yosys runs), a PE's multiplier and accumulator, the stream
    width, a row's operand lane, a shift PE."""
    mult = p.get("mult_cols", p["cols"])
    return {"one": 1.0, "cols": p["cols"], "multiplier_pes": p["rows"] * mult, "data_width": p["data_width"],
            "rows": p["rows"], "shift_pes": p["rows"] * (p["cols"] - mult)}


@dataclass(frozen=True)
class _Family:
    memories: object
    features: object


def _potacc_features(p):
    """The GEMM core's features, a shift PE apart from a multiplier PE, and a shift PE's second term (APoT)."""
    features = _gemm_features(p)
    shift = features.pop("shift_pes")
    rows = features.pop("rows")
    return {**features, "shift_pes": shift, "second_term_pes": shift * (p["terms"] - 1), "rows": rows}


def _mm2im_memories(p):
    """(width, depth) of MM2IM's memories: weights (a rows x cols tile a word), the input-row buffer's two
    halves, the accumulation buffer (32-bit lanes), the output queue."""
    return [(8 * p["rows"] * p["cols"], p["w_depth"]), (8 * p["rows"], 2 * p["in_depth"]),
            (32 * p["cols"], p["acc_depth"]), (8 * p["cols"], 32)]


def _mm2im_features(p):
    """An output lane's requantizer and accumulator port, a multiplier, the stream width, an input lane."""
    return {"one": 1.0, "cols": p["cols"], "multiplier_pes": p["rows"] * p["cols"], "data_width": p["data_width"],
            "rows": p["rows"]}


def _flexarray_memories(p):
    """(width, depth, read ports) of flexarray's memories: the two-bank accumulation buffer (32-bit lanes,
    read by the adder and by the readout engine) and the output FIFO (``min(dn_bw, rn_bw)`` bytes)."""
    from ...accelerators.flexarray.gateware import fifo_depth
    return [(32 * p["rn_bw"], 2 * p["acc_depth"], 2), (8 * min(p["dn_bw"], p["rn_bw"]), fifo_depth(), 1)]


def _flexarray_features(p):
    """In the order they join a fit: a requantizer (8 DSP48 and its pipeline; ``min(dn_bw, rn_bw)`` of them),
    a multiplier switch (its DSP48, operand and map registers, a tree adder), a reduction lane's collector
    (a 32-bit choice among the tree's nodes it reaches: about one per multiplier of its ``reach``, or of the
    whole array without one: rn_bw x reach), a crossbar input
    (each multiplier picks one of dn_bw values), a reduction lane (accumulator adder, parameters), the
    reference network's own per-multiplier lane logic (``rn`` = 1) and the augmented reduction tree's
    (``rn`` = 2: a node's three adders and configuration) and the distribution tree's registered levels (``dn``
    = 1: per multiplier and level, the step's weight and map following the operands); the last two are dropped
    while no calibration point has them."""
    return {"one": 1.0, "requantizers": min(p["dn_bw"], p["rn_bw"]), "multipliers": p["multipliers"],
            "collectors": p["rn_bw"] * (p.get("reach", 0) or p["multipliers"]), "crossbar": p["multipliers"] * p["dn_bw"],
            "rn_bw": p["rn_bw"], "seq_multipliers": p["multipliers"] * (p.get("rn", 0) == 1),
            "art_multipliers": p["multipliers"] * (p.get("rn", 0) == 2),
            "tree_levels": p["multipliers"] * (p.get("dn", 0) == 1)
            * max(0, (p["multipliers"] // p["dn_bw"]).bit_length() - 1)}


#: accelerators with an analytic model (potacc shares the GEMM core, its shift columns features of their own)
MODELS = {"gemm": _Family(_gemm_memories, _gemm_features), "potacc": _Family(_gemm_memories, _potacc_features),
          "mm2im": _Family(_mm2im_memories, _mm2im_features),
          "flexarray": _Family(_flexarray_memories, _flexarray_features)}


def _calibration():
    try:
        return json.loads(CALIBRATION_FILE.read_text())
    except FileNotFoundError:
        return {}


def _fit(points, features, names):
    """Least-squares coefficients of each resource over the features (features absent from every point dropped)."""
    x = np.array([[f[n] for n in names] for f in (features(p["params"]) for p in points)], dtype=float)
    fits = {}
    for resource in ("lut", "ff", "dsp"):
        y = np.array([p[resource] for p in points], dtype=float)
        fits[resource] = np.linalg.lstsq(x, y, rcond=None)[0]
    return fits


class ResourceModel:
    """LUT/FF/DSP/BRAM36 of an accelerator's design points, from its memories and calibrated coefficients."""

    def __init__(self, name, points):
        if name not in MODELS:
            raise ParameterError(f"no analytic resource model for accelerator {name!r}; models exist for "
                                 f"{', '.join(MODELS)}")
        if not points:
            raise ParameterError(f"no Yosys calibration points for {name!r} in {CALIBRATION_FILE}")
        self.name, self.points, self.family = name, points, MODELS[name]
        # features join in order while they add information and leave at least one point more than
        # coefficients (a feature constant or collinear over the points cannot be fitted)
        rows = [self.family.features(p["params"]) for p in points]
        self.names = []
        for name in rows[0]:
            if len(self.names) + 1 > max(1, len(points) - 1):
                break
            matrix = np.array([[r[n] for n in self.names + [name]] for r in rows], dtype=float)
            if np.linalg.matrix_rank(matrix) == len(self.names) + 1:
                self.names.append(name)
        self.coefficients = _fit(points, self.family.features, self.names)

    def memories(self, params):
        bram, lutram = 0.0, 0
        for memory in self.family.memories(params):
            b, l = _memory_cost(*memory)
            bram, lutram = bram + b, lutram + l
        return bram, lutram

    def estimate(self, params) -> dict:
        """{"lut", "ff", "dsp", "bram36"} of the design with these (resolved) parameters."""
        features = self.family.features(params)
        x = np.array([features[n] for n in self.names])
        result = {r: max(0, int(round(float(x @ self.coefficients[r])))) for r in ("lut", "ff", "dsp")}
        bram, lutram = self.memories(params)
        result["bram36"] = bram
        result["lut"] += lutram
        return result


@lru_cache(maxsize=None)
def resource_model(name) -> ResourceModel:
    """The calibrated model of accelerator ``name`` (:class:`ParameterError` without one)."""
    return ResourceModel(name, _calibration().get(name, {}).get("points", []))


def calibration_report(name):
    """Relative errors of the model against its Yosys points, each left out of the fit that predicts it."""
    points = _calibration().get(name, {}).get("points", [])
    rows = []
    for i, point in enumerate(points):
        rest = points[:i] + points[i + 1:]
        if len(rest) < 2:
            break
        predicted = ResourceModel(name, rest).estimate(point["params"])
        measured = {"lut": point["lut"] + point.get("lut_ram", 0), "ff": point["ff"], "dsp": point["dsp"],
                    "bram36": point["bram36"]}
        rows.append({"params": point["params"], "measured": measured, "predicted": predicted,
                     "error": {r: (predicted[r] - measured[r]) / measured[r] if measured[r] else
                               float(predicted[r] != measured[r]) for r in RESOURCES}})
    mean = {r: float(np.mean([abs(row["error"][r]) for row in rows])) if rows else None for r in RESOURCES}
    return {"accelerator": name, "points": len(points), "leave_one_out": rows, "mean_abs_error": mean,
            "method": "Yosys synth_xilinx (sw/hardware/synthesis.py) at each point; model refitted without it"}


def record_calibration(name, accelerators, progress=None):
    """Run Yosys (cached) on each design and store the figures as ``name``'s calibration points."""
    from ..commands.resources import accelerator_resources
    data = _calibration()
    points = []
    for accelerator in accelerators:
        estimate = accelerator_resources(accelerator, progress)
        points.append({"params": dict(accelerator.params), "lut": estimate.lut, "lut_ram": estimate.lut_ram,
                       "ff": estimate.ff, "dsp": estimate.dsp, "bram36": estimate.bram36,
                       "family": estimate.family})
    data.setdefault(name, {}).update(source="Yosys synth_xilinx -family xc7 (accelkit resources), measured on "
                                            "this project's machine", points=points)
    CALIBRATION_FILE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    resource_model.cache_clear()
    return points


class FmaxModel:
    """A design point's clock, from the placed-and-routed (ECP5-85F) Fmax of the nearest measured point.

    Place and route takes ten minutes or more per design here, so only a few points
    are ever measured. The estimate is the Fmax of the measured point nearest in
    parameters (distance: summed ``|log2((1 + a) / (1 + b))|`` over the parameters, so
    doubling an array counts the same at any size), which suits arrays whose critical
    path lies in one PE or one requantizer rather than across the array. It is a coarse
    stand-in, named as such wherever it prunes a point; a point measured exactly gets its
    own figure.
    """

    def __init__(self, name, points):
        if not points:
            raise ParameterError(f"no placed-and-routed Fmax is recorded for {name!r} (in {CALIBRATION_FILE} or "
                                 "the cache's dse-fmax folder), so a required clock cannot be checked; "
                                 "`accelkit dse ... --place-route` without --min-clock-mhz measures one")
        self.name, self.points = name, points

    def estimate(self, params):
        """(Fmax in MHz, where it comes from) for a resolved parameter dict."""
        def distance(point):
            other = point["params"]
            return sum(abs(np.log2((1 + float(params[k])) / (1 + float(other[k]))))
                       for k in params if k in other and isinstance(params[k], (int, float)))
        nearest = min(self.points, key=distance)
        exact = distance(nearest) == 0
        return float(nearest["fmax_mhz"]), (f"{nearest['source']}, this design" if exact else
                                            f"{nearest['source']} of the nearest measured design")


def _measured_fmax_file(name):
    from ...sim.toolchain import cache_root
    return cache_root() / "dse-fmax" / f"{name}.json"


def _measured_fmax(name):
    try:
        return json.loads(_measured_fmax_file(name).read_text())
    except (OSError, ValueError):
        return []


@lru_cache(maxsize=None)
def fmax_model(name) -> FmaxModel:
    """The Fmax model of accelerator ``name``: the points in ``calibration.json`` and those measured on this
    machine (or cluster) by ``dse --place-route``, kept in the shared cache; :class:`ParameterError` when
    there are none."""
    points = {json.dumps(p["params"], sort_keys=True): p for p in _calibration().get(name, {}).get("fmax", [])}
    points.update({json.dumps(p["params"], sort_keys=True): p for p in _measured_fmax(name)})
    return FmaxModel(name, list(points.values()))


def _fmax_point(accelerator, result):
    from ..hardware.timing import TIMING_SOURCE
    return {"params": dict(accelerator.params), "fmax_mhz": float(result.fmax_mhz), "source": TIMING_SOURCE,
            "seeds": sorted(int(s) for s in result.per_seed)}


def remember_fmax(accelerator, result):
    """Keep a place-and-route result of ``accelerator`` as an Fmax point in the shared cache (written by
    rename, like the cache's other entries)."""
    points = {json.dumps(p["params"], sort_keys=True): p for p in _measured_fmax(accelerator.name)}
    point = _fmax_point(accelerator, result)
    points[json.dumps(point["params"], sort_keys=True)] = point
    path = _measured_fmax_file(accelerator.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(sorted(points.values(), key=lambda p: json.dumps(p["params"], sort_keys=True)),
                                    indent=1) + "\n")
    os.replace(temporary, path)
    fmax_model.cache_clear()
    return point


def record_fmax(name, accelerators, *, run=False, progress=None):
    """Store the ECP5-85F place-and-route Fmax of each design in ``calibration.json`` as ``name``'s Fmax points.

    Only cached results are read unless ``run`` (each run takes minutes); designs with no
    result are skipped. Points already stored for other parameters are kept.
    """
    from ..hardware.figures import ecp5_verilog
    from ..hardware.timing import cached_timing, ecp5_timing
    data = _calibration()
    entry = data.setdefault(name, {})
    points = {json.dumps(p["params"], sort_keys=True): p for p in entry.get("fmax", [])}
    added = []
    for accelerator in accelerators:
        verilog = ecp5_verilog(accelerator, progress)
        result = (ecp5_timing(verilog, accelerator.top_name, progress=progress) if run
                  else cached_timing(verilog, accelerator.top_name))
        if result is None:
            continue
        point = _fmax_point(accelerator, result)
        points[json.dumps(point["params"], sort_keys=True)] = point
        added.append(point)
    entry["fmax"] = sorted(points.values(), key=lambda p: json.dumps(p["params"], sort_keys=True))
    CALIBRATION_FILE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    fmax_model.cache_clear()
    return added
