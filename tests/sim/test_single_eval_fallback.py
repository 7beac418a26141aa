"""The native harness's two-evaluation route, on a design whose stream handshake is combinational.

The pass-through core below ties ``s_axis_tready`` to ``m_axis_tready`` (an
input the harness changes without evaluating the model). Yosys finds that path,
so the harness must evaluate twice per cycle; its result and cycle count then
equal Amaranth's simulator, and forcing one evaluation is shown to break them.
"""

import numpy as np
import pytest
from amaranth import Module

from accelkit.driver.device import DmaTiming
from accelkit.hw.shell import AcceleratorShell, CoreBase
from accelkit.sim.amaranth_sim import AmaranthDevice
from accelkit.sim.combinational_paths import outputs_reached
from accelkit.sim.verilator import (UNEVALUATED_INPUTS, VerilatorDevice, build_native, convert_verilog,
                                    single_eval_safe)
from accelkit.errors import ParameterError

TOP = "accelkit_passthrough"
BEATS = 40


class _PassThrough(CoreBase):
    """Adds one to every byte; ready and valid pass straight through (no register on the handshake)."""

    def elaborate(self, platform):
        m = Module()
        data = self.input.payload.data
        m.d.comb += [
            self.output.valid.eq(self.input.valid),
            self.input.ready.eq(self.output.ready),
            self.output.payload.last.eq(self.input.payload.last),
        ]
        # done comes the cycle after the last beat, once the shell has counted it
        m.d.sync += self.done.eq(self.input.valid & self.output.ready & self.input.payload.last)
        for lane in range(0, self.data_width, 8):
            m.d.comb += self.output.payload.data[lane:lane + 8].eq(data[lane:lane + 8] + 1)
        return m


def _job(device, payload):
    device.write("IN_BEATS", BEATS)
    device.dma_send(payload)
    received = device.dma_receive(payload.size)
    cycles = device.run(10_000).cycles
    return received.copy(), cycles


@pytest.fixture(scope="module")
def design():
    shell = AcceleratorShell(_PassThrough(32))
    text = convert_verilog(shell, TOP)
    return shell, text, build_native(text, TOP)


def test_yosys_finds_the_combinational_handshake(design):
    _, text, _ = design
    assert "s_axis_tready" in outputs_reached(text, TOP, UNEVALUATED_INPUTS)
    assert outputs_reached(text, TOP, ["s_axis_tdata"]) >= {"m_axis_tdata"}
    with pytest.raises(ParameterError, match="no such input port"):
        outputs_reached(text, TOP, ["s_axis_tvalidd"])


def test_two_evaluations_are_exact_and_one_is_not(design):
    shell, text, library = design
    assert not single_eval_safe(text, TOP, library)
    payload = np.random.default_rng(0).integers(0, 256, BEATS * 4, dtype=np.uint8)
    dma = DmaTiming(2, 3)
    with AmaranthDevice(AcceleratorShell(_PassThrough(32)), dma) as reference:
        expected, expected_cycles = _job(reference, payload)
    assert np.array_equal(expected, payload + np.uint8(1))
    native = VerilatorDevice.from_shell(shell, TOP, dma)
    assert not native.single_eval
    with native:
        got, cycles = _job(native, payload)
        assert np.array_equal(got, expected) and cycles == expected_cycles
    # Forced to one evaluation, the harness reads tready as the last edge left it: the run differs.
    with VerilatorDevice(library, shell.register_map, 32, dma, single_eval=True) as forced:
        try:
            got, cycles = _job(forced, payload)
            wrong = cycles != expected_cycles or not np.array_equal(got, expected)
        except Exception:
            wrong = True
    assert wrong
