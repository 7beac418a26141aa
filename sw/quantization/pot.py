"""Power-of-two weight quantization of int8 TFLite models (PoT, APoT, MSQ).

The weights of every CONV_2D / FULLY_CONNECTED are moved onto a power-of-two
grid per output channel; the model stays an ordinary int8 model that LiteRT runs
on the CPU (weights stored as int8 on the grid, weight scales and the int32
biases adjusted to match), so accuracy can be compared directly. The method and
the per-layer compact encoding a shift-PE accelerator consumes are written to a
side file (``OUT.tflite.pot.json``).

Grids, as integer multiples of the channel's new scale:

* ``pot`` (QKeras ``quantized_po2``): w = sign * 2^e, e in 0..6, or 0; the
  scale is chosen so the largest |w| maps to 2^6.
* ``apot`` (additive powers of two, two terms): w = sign * (2^a + 2^b) with
  a > b, or a single power of two, or 0; the largest |w| maps to 96 = 2^6 + 2^5.
* ``msq`` (mixed scheme, Chang et al., "Mix and Match", HPCA 2021): per output
  channel (a row of the weight matrix) either uniform int8 fixed point (the
  original weights) or the two-term sum-of-powers-of-two grid. As in the paper,
  fixed point goes to the rows whose distribution is most uniform-like (lowest
  kurtosis) and the power-of-two grid, dense near zero, to the Gaussian-like
  rest; one third of the rows are fixed point, matching a shift-PE array with a
  third of its columns multipliers.

Compact encoding: a term is a nibble, 0 for none, else (sign << 3) | (e + 1);
PoT uses one nibble per weight, APoT and MSQ's power-of-two rows two (one byte).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...accelerators.gemm.layout import shift_fields
from ...accelerators.potacc import METHODS
from ...errors import ModelError, ParameterError
from ..reports.output import replacing, write_bytes

__all__ = ["METHODS", "pot_levels", "project", "encode", "quantize_model", "quantize_main"]

def pot_levels(method):
    """Non-negative grid levels (integers) of a method's power-of-two rows."""
    if method == "pot":
        return np.array([0] + [1 << e for e in range(7)])
    if method in ("apot", "msq"):
        levels = {0} | {1 << e for e in range(7)} | {(1 << a) + (1 << b) for a in range(7) for b in range(a)}
        return np.array(sorted(v for v in levels if v <= 96))
    raise ParameterError(f"method must be one of {', '.join(METHODS)}, not {method!r}")


def project(values, levels):
    """Nearest grid level (by magnitude) for each value, keeping the sign."""
    magnitude = np.abs(values)
    index = np.clip(np.searchsorted(levels, magnitude), 1, len(levels) - 1)
    below, above = levels[index - 1], levels[index]
    nearest = np.where(magnitude - below <= above - magnitude, below, above)
    return np.sign(values) * nearest


def encode(weights, terms_per_weight):
    """Compact sign/exponent encoding (the shift PEs' nibbles, see ``accelerators/gemm/pe.py``), packed
    two nibbles to a byte, low nibble first."""
    fields = shift_fields(np.asarray(weights).reshape(-1), terms_per_weight)
    if terms_per_weight == 2:
        return fields
    if fields.size % 2:
        fields = np.append(fields, 0).astype(np.uint8)
    return (fields[0::2] | (fields[1::2] << 4)).astype(np.uint8)


@dataclass
class LayerReport:
    index: int
    op: str
    channels: int
    pot_channels: int
    mean_abs_error: float       # in units of the original scale, over the real weights

    def as_dict(self):
        return dict(self.__dict__)


def _kurtosis(rows):
    centered = rows - rows.mean(axis=1, keepdims=True)
    variance = (centered ** 2).mean(axis=1)
    return np.where(variance > 0, (centered ** 4).mean(axis=1) / np.maximum(variance, 1e-12) ** 2, 0.0)


def quantize_model(source, destination, method, progress=None):
    """Write ``destination``: ``source`` with CONV_2D/FC weights on the ``method`` grid; returns the report."""
    import tflite
    if method not in METHODS:
        raise ParameterError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    try:
        data = bytearray(Path(source).read_bytes())
        model = tflite.Model.GetRootAsModel(data, 0)
        graph = model.Subgraphs(0)
    except Exception as error:
        raise ModelError(f"cannot read {source} as a TFLite model: {error}") from None
    levels = pot_levels(method)
    top = int(levels[-1])
    wanted = {tflite.BuiltinOperator.CONV_2D: "CONV_2D", tflite.BuiltinOperator.FULLY_CONNECTED: "FULLY_CONNECTED"}
    reports, encodings = [], {}
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = wanted.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
        if kind is None:
            continue
        inputs = op.InputsAsNumpy()
        weight_tensor = graph.Tensors(int(inputs[1]))
        if weight_tensor.Type() != tflite.TensorType.INT8:
            continue
        shape = weight_tensor.ShapeAsNumpy()
        raw = model.Buffers(weight_tensor.Buffer()).DataAsNumpy()
        weights = raw.view(np.int8).reshape(shape[0], -1)
        scales = weight_tensor.Quantization().ScaleAsNumpy()
        channels = shape[0]
        per_channel = np.broadcast_to(scales, (channels,)).astype(np.float64)
        real = weights.astype(np.float64) * per_channel[:, None]
        uniform_rows = np.zeros(channels, dtype=bool)
        if method == "msq":
            kurtosis = _kurtosis(weights.astype(np.float64))
            uniform_rows[np.argsort(kurtosis, kind="stable")[:channels // 3]] = True
        peak = np.abs(real).max(axis=1)
        new_scales = np.where(uniform_rows | (peak == 0), per_channel, peak / top)
        projected = np.where(uniform_rows[:, None], weights,
                             project(np.round(real / new_scales[:, None] * 64) / 64, levels))
        if scales.size == 1 and not np.allclose(new_scales, new_scales[0]):
            raise ModelError(f"operator {index} ({kind}) has per-tensor weight scales; PoT needs per-channel scales")
        weights[:] = projected.astype(np.int8)
        scales[:] = new_scales[:scales.size].astype(np.float32)
        if len(inputs) > 2 and inputs[2] >= 0:
            bias_tensor = graph.Tensors(int(inputs[2]))
            bias = model.Buffers(bias_tensor.Buffer()).DataAsNumpy().view(np.int32)
            bias_scales = bias_tensor.Quantization().ScaleAsNumpy()
            input_scale = float(graph.Tensors(int(inputs[0])).Quantization().ScaleAsNumpy()[0])
            old_bias_scales = np.broadcast_to(bias_scales, (channels,)).astype(np.float64)
            target = np.float32(input_scale) * new_scales.astype(np.float32)
            bias[:] = np.round(bias.astype(np.float64) * old_bias_scales / target).astype(np.int32)
            bias_scales[:] = target[:bias_scales.size]
        error = np.abs(projected * new_scales[:, None] - real).mean() / per_channel.mean()
        reports.append(LayerReport(index, kind, int(channels), int((~uniform_rows).sum()), float(error)))
        terms = 1 if method == "pot" else 2
        encodings[str(index)] = {"uniform_rows": np.flatnonzero(uniform_rows).tolist(),
                            "encoding": encode(projected[~uniform_rows], terms).tobytes().hex()}
        if progress:
            progress(f"{kind} #{index}: {channels - int(uniform_rows.sum())}/{channels} channels on the {method} grid")
    if not reports:
        raise ModelError(f"{source} has no int8 CONV_2D or FULLY_CONNECTED layer to quantize")
    write_bytes(destination, data)
    side = {"method": method, "source": Path(source).name, "grid_levels": levels.tolist(),
            "layers": [r.as_dict() for r in reports], "encodings": encodings}
    with replacing(f"{destination}.pot.json") as handle:
        handle.write((json.dumps(side, indent=1) + "\n").encode())
    return side


def quantize_main(args):
    """`accelkit quantize MODEL --method M --output OUT.tflite`."""
    from ..reports.output import console, progress_printer, provenance, table, write_json
    from ..zoo import resolve_model
    source = resolve_model(args.model)
    side = quantize_model(source, args.output, args.method, progress_printer())
    console.print(table(f"{source.name} -> {args.output} ({args.method})",
                        ["#", "op", "channels", "power-of-two channels", "mean |error| (LSB of the old scale)"],
                        [[r["index"], r["op"], r["channels"], r["pot_channels"], r["mean_abs_error"]]
                         for r in side["layers"]]))
    console.print(f"method and compact encodings: {args.output}.pot.json")
    if args.json:
        write_json(args.json, provenance("quantize", None, None, None, None, method=args.method,
                                         layers=side["layers"]))
    return 0
