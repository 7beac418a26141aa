"""Writing a board program: a .tflite model planned on the host, for ``accelkit-board run`` on the board.

The host reads the model, turns each operator into a layer of a registered
kind or a CPU operator (``driver/cpu_ops.py``), and asks the accelerator for a
plan, exactly as ``accelkit run`` does; the program keeps those decisions and
the layers' constants (:mod:`.board_run` describes the format and reads it
back). A model with an operator the board's numpy cannot run is refused here,
naming the operator, not on the board.
"""

import hashlib
import json
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from ....driver.cpu_ops import cpu_op_for
from ....errors import ModelError, UnsupportedLayer
from ...frontends.tflite.frontend import activation_inputs, kind_for
from ...frontends.tflite.model import op_macs, read_model
from ...reports.model_report import LayerRecord
from .board_run import BOARD_ACCELERATORS, PROGRAM_FORMAT

__all__ = ["write_program"]


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _layer_spec(layer, index, arrays):
    spec = {}
    for item in fields(layer):
        value = getattr(layer, item.name)
        if isinstance(value, np.ndarray):
            key = f"op{index}.{item.name}"
            arrays[key] = value
            spec[item.name] = {"array": key}
        else:
            spec[item.name] = _plain(value)
    return {"kind": layer.op, "fields": spec}


def write_program(model_path, accelerator, out_dir, *, cpu_only=False) -> Path:
    """Plan ``model_path`` for ``accelerator`` and write its board program into ``out_dir``; returns the folder.

    ``cpu_only`` keeps every layer on the CPU (a program for checking the board's numpy alone).
    Raises :class:`ModelError` when the board cannot run the model.
    """
    if accelerator.name not in BOARD_ACCELERATORS:
        raise ModelError(f"the board bundle carries the drivers of {', '.join(sorted(BOARD_ACCELERATORS))}, "
                         f"not {accelerator.name}'s")
    model_path = Path(model_path)
    model = read_model(model_path)
    tensors = model.tensors
    if len(model.inputs) != 1:
        raise ModelError(f"{model_path.name} has {len(model.inputs)} inputs; a board program takes one")
    arrays, ops = {}, []
    for op in model.ops:
        record = LayerRecord(op.index, op.op, [list(tensors[i].shape) for i in op.inputs if i >= 0],
                             [list(tensors[i].shape) for i in op.outputs], op_macs(op, tensors), "cpu")
        entry = {"index": op.index, "op": op.op, "outputs": [op.outputs[0]],
                 "output_shape": [int(d) for d in tensors[op.outputs[0]].shape]}
        try:
            layer = kind_for(op).from_tflite(op, tensors)
        except UnsupportedLayer as error:
            layer, record.reason = None, f"{op.op} is not offloaded to {accelerator.name}" \
                if str(error).endswith("has no accelkit layer kind") else str(error)
        if layer is not None:
            entry["inputs"] = activation_inputs(op)
            entry["layer"] = _layer_spec(layer, op.index, arrays)
            try:
                if cpu_only:
                    raise UnsupportedLayer("kept on the CPU (a CPU-only program)")
                plan = accelerator.plan(layer, *(tensors[i].shape for i in entry["inputs"]))
                entry["plan"] = plan.as_dict()
                record.where = "accelerator"
                record.extra["accelerator"] = plan.accelerator
                record.extra["plan"] = plan.as_dict()
            except UnsupportedLayer as error:
                record.reason = str(error)
        else:
            try:
                entry["cpu_op"] = cpu_op_for(op, tensors).as_dict()
            except UnsupportedLayer as error:
                raise ModelError(f"{model_path.name}: operator {op.index} ({op.op}) cannot run on the board: "
                                 f"{error}") from None
            entry["inputs"] = [op.inputs[0]]
        entry["record"] = {item.name: getattr(record, item.name) for item in fields(record)}
        ops.append(entry)
    model_input = tensors[model.inputs[0]]
    program = {
        "format": PROGRAM_FORMAT, "model": model_path.stem, "source": model_path.name,
        "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(), "written_by": "accelkit",
        "accelerator": {"name": accelerator.name, "params": dict(accelerator.params)},
        "registers": [asdict(reg) for reg in accelerator.register_map()],
        "input": {"tensor": model.inputs[0], "shape": [int(d) for d in model_input.shape],
                  "dtype": np.dtype(model_input.dtype).name},
        "outputs": list(model.outputs), "ops": ops,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "program.json").write_text(json.dumps(program, indent=1))
    np.savez_compressed(out_dir / "arrays.npz", **arrays)
    return out_dir
