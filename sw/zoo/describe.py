#!/usr/bin/env python3
"""Summarise the zoo's .tflite models: I/O quantization, operators, MACs.

Runs without TensorFlow (only the ``tflite`` flatbuffer bindings and numpy;
LiteRT too for the digits accuracy), e.g. in accelkit's own venv:

    .venv/bin/python sw/zoo/describe.py [MODEL.tflite ...] [--no-accuracy]

Prints Markdown; its output is what sw/zoo/models/README.md quotes.

MAC conventions (one multiply-accumulate = 1 MAC, batch included):
* CONV_2D: output elements x kh x kw x input channels per group; positions
  that fall on SAME padding are counted, as is customary.
* DEPTHWISE_CONV_2D: output elements x kh x kw.
* FULLY_CONNECTED: output elements x input features.
* TRANSPOSE_CONV: input elements x kh x kw x output channels, i.e. every
  input value scattered once per kernel tap (the work the reference kernel
  does; taps landing outside the cropped output are included).
* BATCH_MATMUL: output elements x the contracted dimension.
Every other operator is counted as 0 MACs.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import tflite

ZOO = Path(__file__).resolve().parent
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV",
           "BATCH_MATMUL")

_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items()
             if not k.startswith("_")}
_TYPE_NAMES = {v: k.lower() for k, v in vars(tflite.TensorType).items()
               if not k.startswith("_")}


class Graph:
    """The first subgraph of a .tflite file, flattened into plain Python."""

    def __init__(self, path):
        self.path = Path(path)
        buf = self.path.read_bytes()
        self.size = len(buf)
        model = tflite.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() != 1:
            raise ValueError(f"{path}: expected one subgraph, "
                             f"found {model.SubgraphsLength()}")
        sg = model.Subgraphs(0)
        self.tensors = [self._tensor(model, sg.Tensors(i))
                        for i in range(sg.TensorsLength())]
        self.inputs = sg.InputsAsNumpy().tolist()
        self.outputs = sg.OutputsAsNumpy().tolist()
        self.ops = []
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            # Codes above 127 only live in the newer field; older files only
            # fill the deprecated one.
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
            if builtin == tflite.BuiltinOperator.CUSTOM:
                name = f"CUSTOM:{code.CustomCode().decode()}"
            self.ops.append({
                "name": name,
                "version": code.Version(),
                "inputs": op.InputsAsNumpy().tolist() if op.InputsLength() else [],
                "outputs": op.OutputsAsNumpy().tolist(),
                "options": op,
            })

    @staticmethod
    def _tensor(model, t):
        q = t.Quantization()
        scale = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else None
        zp = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else None
        b = model.Buffers(t.Buffer())
        const = b is not None and (b.DataLength() > 0 or b.Size() > 0)
        zeros = 0
        if const and t.Type() == tflite.TensorType.INT8 and b.DataLength() > 0:
            values = b.DataAsNumpy().view(np.int8).astype(np.int64)
            # the real zero: the zero point (per tensor, or per channel along the quantized dimension)
            shape = t.ShapeAsNumpy().tolist() if t.ShapeLength() else [values.size]
            zero = np.zeros(shape, np.int64)
            if zp is not None and zp.size == 1:
                zero[...] = int(zp[0])
            elif zp is not None and len(shape) > q.QuantizedDimension() \
                    and shape[q.QuantizedDimension()] == zp.size:
                view = [1] * len(shape)
                view[q.QuantizedDimension()] = zp.size
                zero[...] = zp.reshape(view)
            if values.size == zero.size:
                zeros = int(np.count_nonzero(values == zero.reshape(-1)))
        return {
            "name": t.Name().decode(),
            "shape": t.ShapeAsNumpy().tolist() if t.ShapeLength() else [],
            "type": _TYPE_NAMES.get(t.Type(), str(t.Type())),
            "scale": scale,
            "zero_point": zp,
            "const": const,
            "zeros": zeros,
        }

    # -- arithmetic ----------------------------------------------------------

    def macs(self, op):
        name = op["name"]
        if name not in MAC_OPS:
            return 0
        shp = lambda i: self.tensors[i]["shape"]
        out = int(np.prod(shp(op["outputs"][0])))
        if name == "CONV_2D":
            _, kh, kw, cin = shp(op["inputs"][1])
            return out * kh * kw * cin
        if name == "DEPTHWISE_CONV_2D":
            _, kh, kw, _ = shp(op["inputs"][1])
            return out * kh * kw
        if name == "FULLY_CONNECTED":
            return out * shp(op["inputs"][1])[1]
        if name == "TRANSPOSE_CONV":
            cout, kh, kw, _ = shp(op["inputs"][1])
            return int(np.prod(shp(op["inputs"][2]))) * kh * kw * cout
        # BATCH_MATMUL
        opts = tflite.BatchMatMulOptions()
        table = op["options"].BuiltinOptions()
        opts.Init(table.Bytes, table.Pos)
        lhs = shp(op["inputs"][0])
        k = lhs[-2] if opts.AdjX() else lhs[-1]
        return out * k

    def activation_types(self, op):
        """Element types of the op's non-constant inputs and its outputs."""
        ids = [i for i in op["inputs"] if i >= 0 and not self.tensors[i]["const"]]
        return {self.tensors[i]["type"] for i in ids + op["outputs"]}

    def weight_params(self):
        return sum(int(np.prod(t["shape"])) for t in self.tensors
                   if t["const"] and t["type"] == "int8")

    def zero_weights(self):
        """int8 constants equal to their zero point (the real 0), e.g. pruned weights."""
        return sum(t["zeros"] for t in self.tensors
                   if t["const"] and t["type"] == "int8")


def _weight_quant(g):
    """How each MAC operator's constant weights and bias are quantized."""
    kinds = {}
    for op in g.ops:
        name = op["name"]
        if name not in MAC_OPS or name == "BATCH_MATMUL":
            continue
        w = g.tensors[op["inputs"][1]]
        bias_at = 3 if name == "TRANSPOSE_CONV" else 2
        has_bias = len(op["inputs"]) > bias_at and op["inputs"][bias_at] >= 0
        per = "per-channel" if w["scale"] is not None and len(w["scale"]) > 1 \
            else "per-tensor"
        sym = ("symmetric" if w["zero_point"] is not None
               and not np.any(w["zero_point"]) else "asymmetric")
        bias = (g.tensors[op["inputs"][bias_at]]["type"] + " bias") if has_bias \
            else "no bias"
        kinds.setdefault(name, set()).add(f"{w['type']} {per} {sym}, {bias}")
    return {n: " / ".join(sorted(k)) for n, k in kinds.items()}


def _fmt_quant(t):
    if t["scale"] is None:
        return "none"
    if len(t["scale"]) == 1:
        return f"scale {t['scale'][0]:.6g}, zero point {int(t['zero_point'][0])}"
    return f"per-channel ({len(t['scale'])} scales)"


def _fmt_io(g, i):
    t = g.tensors[i]
    return f"`{t['name']}` {t['type']} {t['shape']}, {_fmt_quant(t)}"


def describe(path):
    g = Graph(path)
    weights, zeros = g.weight_params(), g.zero_weights()
    # the zero share is shown where it is notable (pruned models)
    shown = f" ({zeros:,} zero, {zeros / weights:.1%})" if weights and zeros >= 0.1 * weights else ""
    lines = [f"### {g.path.stem}", "",
             f"- file: `{g.path.name}`, {g.size:,} bytes, "
             f"{weights:,} int8 weights{shown}"]
    for i in g.inputs:
        lines.append(f"- input: {_fmt_io(g, i)}")
    for i in g.outputs:
        lines.append(f"- output: {_fmt_io(g, i)}")

    counts = Counter(op["name"] for op in g.ops)
    macs = Counter()
    types = {}
    versions = {}
    for op in g.ops:
        macs[op["name"]] += g.macs(op)
        types.setdefault(op["name"], set()).update(g.activation_types(op))
        versions.setdefault(op["name"], set()).add(op["version"])
    total = sum(macs.values())
    lines += ["", f"{len(g.ops)} operators:", "",
              "| operator | count | version | activation types | MACs | share |",
              "| --- | ---: | --- | --- | ---: | ---: |"]
    for name in sorted(counts, key=lambda n: (-macs[n], -counts[n], n)):
        share = f"{100 * macs[name] / total:.1f}%" if total and macs[name] else ""
        lines.append(f"| {name} | {counts[name]} | "
                     f"{','.join(map(str, sorted(versions[name])))} | "
                     f"{','.join(sorted(types[name]))} | "
                     f"{macs[name]:,} | {share} |")
    lines += ["", "MACs by kind: " + ", ".join(
        f"{n} {macs[n]:,}" for n in MAC_OPS) + f"; **total {total:,}**"]
    lines.append("Weight quantization: " + "; ".join(
        f"{n} {kind}" for n, kind in sorted(_weight_quant(g).items())) + ".")
    odd = sorted(n for n, ts in types.items() if ts != {"int8"})
    lines.append("Operators with non-int8 activations: "
                 + (", ".join(f"{n} ({','.join(sorted(types[n]))})" for n in odd)
                    if odd else "none") + ".")
    return "\n".join(lines), {"ops": counts, "macs": macs, "total": total}


_ACTIVATIONS = {v: k for k, v in vars(tflite.ActivationFunctionType).items()
                if not k.startswith("_")}
_FUSED_OPTIONS = {
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "TRANSPOSE_CONV": "TransposeConvOptions", "FULLY_CONNECTED": "FullyConnectedOptions",
    "ADD": "AddOptions", "MUL": "MulOptions",
}


def _options_note(g, op):
    """The builtin options that change what an operator computes."""
    name, table = op["name"], op["options"].BuiltinOptions()
    if table is None:
        return ""
    note = _layout_note(g, op, name, table)
    if name in _FUSED_OPTIONS:
        o = getattr(tflite, _FUSED_OPTIONS[name])()
        o.Init(table.Bytes, table.Pos)
        act = _ACTIVATIONS.get(o.FusedActivationFunction(), "?")
        if act != "NONE":
            note = f"{note} +{act}".strip()
    return note


def _layout_note(g, op, name, table):
    if name == "BATCH_MATMUL":
        o = tflite.BatchMatMulOptions()
        o.Init(table.Bytes, table.Pos)
        return f"adj_x={int(o.AdjX())} adj_y={int(o.AdjY())}"
    if name == "FULLY_CONNECTED":
        o = tflite.FullyConnectedOptions()
        o.Init(table.Bytes, table.Pos)
        bias = len(op["inputs"]) > 2 and op["inputs"][2] >= 0
        return f"keep_num_dims={int(o.KeepNumDims())}" + ("" if bias else " no bias")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"):
        o = {"CONV_2D": tflite.Conv2DOptions,
             "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
             "TRANSPOSE_CONV": tflite.TransposeConvOptions}[name]()
        o.Init(table.Bytes, table.Pos)
        pad = {v: k for k, v in vars(tflite.Padding).items()
               if not k.startswith("_")}[o.Padding()]
        w = g.tensors[op["inputs"][1]]["shape"]
        return f"{w[1]}x{w[2]} stride {o.StrideH()} {pad}"
    return ""


def layer_table(path):
    """One row per operator, in execution order."""
    g = Graph(path)
    rows = ["| # | operator | input shapes | output shape | notes | MACs |",
            "| ---: | --- | --- | --- | --- | ---: |"]
    for k, op in enumerate(g.ops):
        shapes = [("w" if g.tensors[i]["const"] else "") + str(g.tensors[i]["shape"])
                  for i in op["inputs"] if i >= 0]
        out = g.tensors[op["outputs"][0]]["shape"]
        macs = g.macs(op)
        rows.append(f"| {k} | {op['name']} | {' '.join(shapes)} | {out} | "
                    f"{_options_note(g, op)} | {f'{macs:,}' if macs else ''} |")
    return "\n".join(rows)


def digits_accuracy(model_path, data_dir):
    """Top-1 accuracy of an int8 digits model (digits_cnn and its variants) with both LiteRT kernel sets."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    x = np.load(data_dir / "digits_test_x.npy")
    y = np.load(data_dir / "digits_test_y.npy")
    result = {}
    for label, resolver in (("default", OpResolverType.AUTO),
                            ("BUILTIN_REF", OpResolverType.BUILTIN_REF)):
        interp = Interpreter(model_path=str(model_path),
                             experimental_op_resolver_type=resolver)
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        out = interp.get_output_details()[0]
        pred = []
        for sample in x:
            interp.set_tensor(inp["index"], sample[None])
            interp.invoke()
            pred.append(int(interp.get_tensor(out["index"])[0].argmax()))
        result[label] = float((np.array(pred) == y).mean())
    return result, len(y)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", type=Path,
                   help="default: every .tflite in sw/zoo/models")
    p.add_argument("--data", type=Path, default=ZOO / "data",
                   help="directory with digits_test_x.npy / digits_test_y.npy")
    p.add_argument("--no-accuracy", action="store_true",
                   help="skip running the digits models with LiteRT")
    p.add_argument("--layers", action="store_true",
                   help="also list every operator with its shapes and MACs")
    a = p.parse_args(argv)
    paths = a.models or sorted((ZOO / "models").glob("*.tflite"))

    summary = []
    for path in paths:
        text, info = describe(path)
        print(text)
        if path.stem.startswith("digits_cnn") and not a.no_accuracy \
                and (a.data / "digits_test_x.npy").exists():
            acc, n = digits_accuracy(path, a.data)
            print(f"Digits test accuracy ({n} held-out samples, int8): "
                  + ", ".join(f"LiteRT {k} {v:.2%}" for k, v in acc.items()) + ".")
        if a.layers:
            print(f"\nOperators of {path.stem} in execution order "
                  "(`w` = constant tensor):\n")
            print(layer_table(path))
        print()
        summary.append((path.stem, info))

    print("### Summary (MACs)", "", "| model | " + " | ".join(MAC_OPS)
          + " | total |", "| --- |" + " ---: |" * (len(MAC_OPS) + 1), sep="\n")
    for stem, info in summary:
        print(f"| {stem} | " + " | ".join(f"{info['macs'][n]:,}" for n in MAC_OPS)
              + f" | {info['total']:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
