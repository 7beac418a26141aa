"""Magnitude pruning of int8 TFLite models: the smallest weights of each layer set to zero.

Every CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and TRANSPOSE_CONV whose
weights are a constant int8 tensor is pruned to the target sparsity on its
own (per layer; an operator may be given a sparsity of its own): its weights
are ranked by real magnitude, ``|q - zero_point| * scale`` with the tensor's
per-channel (or per-tensor) scale and zero point, per output channel (the
default) or over the whole layer, and the smallest ``round(sparsity * size)``
of each (weights already zero first) are written as the zero point, which is
the real value 0. Nothing else
changes (scales, biases, the graph, the file's size), so the model stays an
ordinary int8 model that LiteRT runs, and its accuracy can be compared with
the dense one directly. No fine-tuning is done: this is one-shot pruning.

Accelerators that skip zero weights see them as zeros of the int8 weight
(weight zero points are 0 in TFLite's int8 scheme for these operators).
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ModelError, ParameterError
from ..reports.output import write_bytes

__all__ = ["GRANULARITIES", "PRUNABLE", "prune_model", "prune_main", "check_sparsity"]

#: how weights are ranked: per output channel, or over the whole layer
GRANULARITIES = ("channel", "layer")
#: operators pruned, and the input that holds their weights
PRUNABLE = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1}


def check_sparsity(value):
    """``value`` as a float in [0, 1); ParameterError otherwise."""
    try:
        sparsity = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"sparsity must be a number in [0, 1), not {value!r}") from None
    if not math.isfinite(sparsity) or not 0 <= sparsity < 1:
        raise ParameterError(f"sparsity must be in [0, 1) (the fraction of each layer's weights set to zero), "
                             f"not {value}")
    return sparsity


@dataclass
class LayerReport:
    index: int
    op: str
    weights: int
    zeros_before: int
    zeros_after: int
    sparsity: float

    def as_dict(self):
        return dict(self.__dict__)


def _broadcast(values, shape, axis):
    """Per-channel ``values`` along ``axis`` of ``shape`` (one value: everywhere)."""
    values = np.asarray(values, np.float64)
    if values.size == 1:
        return np.full(shape, values.reshape(-1)[0])
    view = [1] * len(shape)
    view[axis] = values.size
    return np.broadcast_to(values.reshape(view), shape)


def prune_model(source, destination, sparsity, overrides=None, granularity="channel", progress=None):
    """Write ``destination``: ``source`` with each prunable layer's smallest weights set to zero.

    ``overrides`` maps an operator index to its own sparsity (e.g. ``{5: 0.0}`` keeps operator 5 dense);
    ``granularity`` ``"channel"`` prunes every output channel of a layer to the sparsity (the default:
    no channel loses all its weights, and sparse accelerators get balanced channels), ``"layer"`` ranks a
    layer's weights together. Returns ``{"source", "sparsity", "granularity", "layers": [...],
    "weights", "zeros"}``. Raises ModelError for a missing or unreadable file, a file that is not a
    TFLite model, or one with nothing to prune, and ParameterError for a sparsity outside [0, 1), an
    unknown granularity, or an override naming no prunable operator.
    """
    import tflite

    from ..frontends.tflite.model import read_model
    sparsity = check_sparsity(sparsity)
    overrides = {int(index): check_sparsity(value) for index, value in (overrides or {}).items()}
    if granularity not in GRANULARITIES:
        raise ParameterError(f"granularity must be one of {', '.join(GRANULARITIES)}, not {granularity!r}")
    path = Path(source)
    if not path.exists():
        raise ModelError(f"model file {str(path)!r} does not exist")
    if path.is_dir():
        raise ModelError(f"model path {str(path)!r} is a directory, not a .tflite file")
    data = bytearray(path.read_bytes())
    info = read_model(bytes(data))          # validates: a TFLite flatbuffer, consistent tensors and buffers
    info.source = str(path)
    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    reports, pruned_buffers = [], set()
    for op in info.ops:
        slot = PRUNABLE.get(op.op)
        if slot is None or len(op.inputs) <= slot or op.inputs[slot] < 0:
            continue
        tensor = info.tensors[op.inputs[slot]]
        if tensor.dtype != np.int8 or not tensor.is_constant or tensor.scales is None or tensor.sparse:
            continue
        buffer_index = graph.Tensors(tensor.index).Buffer()
        if buffer_index in pruned_buffers:
            continue                        # a buffer shared by two layers is pruned once
        raw = model.Buffers(buffer_index).DataAsNumpy()   # a view into ``data``: writing it edits the model
        weights = raw.view(np.int8).reshape(tensor.shape)
        zero_point = np.rint(_broadcast(tensor.zero_points, tensor.shape, tensor.quantized_dimension)).astype(np.int64)
        scale = _broadcast(tensor.scales, tensor.shape, tensor.quantized_dimension)
        magnitude = np.abs(weights.astype(np.int64) - zero_point) * scale
        before = int(np.count_nonzero(weights.astype(np.int64) == zero_point))
        target = overrides.get(op.index, sparsity)
        # rows: the whole layer, or one per output channel (depthwise: the last axis)
        axis = len(tensor.shape) - 1 if op.op == "DEPTHWISE_CONV_2D" else 0
        rows = (magnitude.reshape(1, -1) if granularity == "layer" else
                np.moveaxis(magnitude, axis, 0).reshape(tensor.shape[axis], -1))
        count = int(round(target * rows.shape[1]))
        smallest = np.zeros(rows.shape, bool)
        np.put_along_axis(smallest, np.argsort(rows, axis=1, kind="stable")[:, :count], True, axis=1)
        if granularity != "layer":
            smallest = np.moveaxis(smallest.reshape(np.moveaxis(magnitude, axis, 0).shape), 0, axis)
        smallest = smallest.reshape(tensor.shape)
        weights[smallest] = zero_point[smallest].astype(np.int8)
        after = int(np.count_nonzero(weights.astype(np.int64) == zero_point))
        pruned_buffers.add(buffer_index)
        reports.append(LayerReport(op.index, op.op, int(weights.size), before, after, target))
        if progress:
            progress(f"{op.op} #{op.index}: {after:,} of {weights.size:,} weights zero ({after / weights.size:.1%})")
    if not reports:
        raise ModelError(f"{source} has no int8 {', '.join(PRUNABLE)} weights to prune")
    unknown = sorted(set(overrides) - {r.index for r in reports})
    if unknown:
        raise ParameterError(f"--layer names operator {unknown[0]}, which has no int8 weights to prune; the "
                             f"prunable operators are {', '.join(str(r.index) for r in reports)}")
    write_bytes(destination, data)
    total = sum(r.weights for r in reports)
    zeros = sum(r.zeros_after for r in reports)
    return {"source": path.name, "sparsity": sparsity, "granularity": granularity,
            "layers": [r.as_dict() for r in reports],
            "weights": total, "zeros": zeros}


def prune_main(args):
    """`accelkit prune MODEL --sparsity S --output OUT.tflite`."""
    from ..reports.output import console, progress_printer, provenance, table, write_json
    from ..zoo import resolve_model
    source = resolve_model(args.model)
    result = prune_model(source, args.output, args.sparsity, dict(args.layer or ()), args.granularity,
                         progress_printer())
    console.print(table(f"{source.name} -> {args.output} (magnitude pruning per {args.granularity})",
                        ["#", "op", "weights", "target", "zero before", "zero after"],
                        [[r["index"], r["op"], f"{r['weights']:,}", f"{r['sparsity']:.0%}",
                          f"{r['zeros_before'] / r['weights']:.1%}", f"{r['zeros_after'] / r['weights']:.1%}"]
                         for r in result["layers"]]))
    console.print(f"{result['zeros']:,} of {result['weights']:,} weights zero ({result['zeros'] / result['weights']:.1%})")
    if args.json:
        write_json(args.json, provenance("prune", None, None, None, None, **result))
    return 0
