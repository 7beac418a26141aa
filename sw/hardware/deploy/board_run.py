"""A model on the board: its program read back and run with the accelerator's own driver and numpy.

A *board program* (written on the host by :mod:`.board_program`) is a folder
holding ``program.json`` and ``arrays.npz``: the model's operators in order,
each with the tensors it reads and writes and either the layer and plan the
accelerator runs it by, or the layer or CPU operator numpy runs it by; the
accelerator's name and parameters; and the register map of the design it was
planned for. Nothing on the board reads the .tflite file, so neither LiteRT
nor the TFLite flatbuffer reader is needed there.

:func:`run_program` runs it on a device: offloaded layers through the
accelerator's ``run`` (the driver code ``accelkit run`` simulates with),
declined layers of a registered kind through the kind's ``reference``, and the
other operators through :mod:`accelkit.driver.cpu_ops`. The CPU side is the same
numpy on every board: PYNQ-Z1/Z2 (armv7l) have no LiteRT wheel, and on the
KV260 (aarch64) numpy keeps the one path that is tested here bit-exact against
LiteRT's reference kernels (a LiteRT wheel for aarch64 exists, but the
delegate's ctypes layouts have been verified on x86-64 only).

This module is part of the board-side bundle: it imports numpy, the device
layer, the layer kinds, the bundled accelerator and the report printer only.
"""

import importlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ....driver.cpu_ops import cpu_op_from_dict
from ....driver.kinds import get_kind
from ....driver.plan import Plan
from ....errors import DeviceError, ModelError
from ....hw.registers import Register, RegisterMap
from ...reports.model_report import LayerRecord

__all__ = ["PROGRAM_FORMAT", "BOARD_ACCELERATORS", "BoardProgram", "load_program", "run_program", "ProgramRun"]

PROGRAM_FORMAT = 1
#: accelerators whose drivers the bundle carries: name -> (module under the package root, class name)
BOARD_ACCELERATORS = {"gemm": ("accelerators.gemm", "GemmAccelerator")}
_ROOT_PACKAGE = __name__.split(".")[0]


def _tuples(value):
    # JSON has lists only; layers take their pairs (stride, dilation, ...) as tuples
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


@dataclass
class BoardOp:
    """One operator of the program: where it runs, and what runs it."""

    index: int
    op: str
    inputs: list
    outputs: list
    output_shape: tuple
    record: LayerRecord
    plan: Plan = None
    layer: object = None
    cpu_op: object = None

    def run(self, accelerator, device, values):
        inputs = [values[i] for i in self.inputs]
        if self.plan is not None:
            out, stats = accelerator.run(self.plan, device, *inputs)
            self.record.take_stats(stats)
        elif self.layer is not None:
            out = self.layer.reference(*inputs)
        else:
            out = self.cpu_op.reference(*inputs)
        values[self.outputs[0]] = np.asarray(out).reshape(self.output_shape)


@dataclass
class BoardProgram:
    """A program read back: the accelerator, its register map, the operators, the model's inputs and outputs."""

    model: str
    accelerator: object
    register_map: RegisterMap
    ops: list
    input_tensor: int
    input_shape: tuple
    input_dtype: np.dtype
    outputs: list
    meta: dict = field(default_factory=dict)


def _accelerator(spec):
    name = spec.get("name")
    if name not in BOARD_ACCELERATORS:
        raise ModelError(f"the program is for accelerator {name!r}; the board bundle carries the drivers of "
                         f"{', '.join(sorted(BOARD_ACCELERATORS))}")
    module, cls = BOARD_ACCELERATORS[name]
    return getattr(importlib.import_module(f"{_ROOT_PACKAGE}.{module}"), cls)(**spec.get("params", {}))


def _layer(spec, arrays):
    fields = {}
    for key, value in spec["fields"].items():
        if isinstance(value, dict) and set(value) == {"array"}:
            fields[key] = arrays[value["array"]]
        else:
            fields[key] = _tuples(value)
    return get_kind(spec["kind"]).layer_class(**fields)


def load_program(path) -> BoardProgram:
    """Read a board program folder (``program.json`` and ``arrays.npz``); :class:`ModelError` when it is not one."""
    path = Path(path)
    try:
        spec = json.loads((path / "program.json").read_text())
        with np.load(path / "arrays.npz", allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise ModelError(f"{path} is not a readable board program (program.json and arrays.npz): {error}") from None
    if not isinstance(spec, dict) or spec.get("format") != PROGRAM_FORMAT:
        raise ModelError(f"{path / 'program.json'} is not a board program of format {PROGRAM_FORMAT}")
    try:
        accelerator = _accelerator(spec["accelerator"])
        register_map = RegisterMap(tuple(Register(**reg) for reg in spec["registers"]))
        ops = []
        for entry in spec["ops"]:
            record = LayerRecord(**entry["record"])
            op = BoardOp(entry["index"], entry["op"], entry["inputs"], entry["outputs"],
                         tuple(entry["output_shape"]), record)
            if "layer" in entry:
                op.layer = _layer(entry["layer"], arrays)
            if "plan" in entry:
                plan = entry["plan"]
                op.plan = Plan(kind=plan["kind"], accelerator=plan["accelerator"], signature=plan["signature"],
                               input_shapes=_tuples(plan["input_shapes"]), output_shape=_tuples(plan["output_shape"]),
                               macs=plan["macs"], schedule=plan["schedule"], layer=op.layer)
            if "cpu_op" in entry:
                op.cpu_op = cpu_op_from_dict(entry["cpu_op"])
            if op.plan is None and op.layer is None and op.cpu_op is None:
                raise ModelError(f"operator {op.index} ({op.op}) has nothing to run it")
            ops.append(op)
        model_input = spec["input"]
        program = BoardProgram(model=spec["model"], accelerator=accelerator, register_map=register_map, ops=ops,
                               input_tensor=model_input["tensor"], input_shape=tuple(model_input["shape"]),
                               input_dtype=np.dtype(model_input["dtype"]), outputs=list(spec["outputs"]),
                               meta={key: spec.get(key) for key in ("source", "sha256", "written_by")})
    except (KeyError, TypeError) as error:
        raise ModelError(f"{path / 'program.json'} is missing or misstates a field: {error!r}") from None
    if program.register_map != accelerator.register_map():
        raise ModelError(f"the program was planned for a design whose registers differ from {accelerator!r}'s "
                         "driver in this bundle: rebuild the program and the bundle from one accelkit version")
    return program


@dataclass
class ProgramRun:
    """What :func:`run_program` measured: per-sample outputs, the last sample's records, seconds by part."""

    outputs: list
    records: list
    wall_seconds: float
    device_seconds: float
    driver_seconds: float
    cpu_seconds: float


def run_program(program: BoardProgram, device, samples, progress=None) -> ProgramRun:
    """Run every sample (one array each, the model's input shape) through the program on ``device``."""
    if device.register_map != program.register_map:
        raise DeviceError("the device's register map is not the one the program was planned for")
    outputs = []
    layer_seconds = cpu_seconds = 0.0
    device_before = getattr(device, "run_seconds", 0.0)
    started = time.perf_counter()
    for number, sample in enumerate(samples):
        sample = np.asarray(sample)
        if sample.dtype != program.input_dtype or sample.size != int(np.prod(program.input_shape)):
            raise ModelError(f"sample {number} is {sample.dtype} {list(sample.shape)}; the model takes "
                             f"{program.input_dtype} {list(program.input_shape)}")
        values = {program.input_tensor: sample.reshape(program.input_shape)}
        for op in program.ops:
            op_started = time.perf_counter()
            op.run(program.accelerator, device, values)
            spent = time.perf_counter() - op_started
            if op.plan is not None:
                layer_seconds += spent
            else:
                cpu_seconds += spent
        outputs.append([values[i] for i in program.outputs])
        if progress and len(samples) > 20 and (number + 1) % max(1, len(samples) // 5) == 0:
            progress(f"{number + 1}/{len(samples)} samples")
    wall = time.perf_counter() - started
    device_seconds = getattr(device, "run_seconds", 0.0) - device_before
    return ProgramRun(outputs=outputs, records=[op.record for op in program.ops], wall_seconds=wall,
                      device_seconds=device_seconds, driver_seconds=layer_seconds - device_seconds,
                      cpu_seconds=cpu_seconds)
