"""The UART host link end to end: SerialDevice (pyserial's interface) -> simulated UART -> link -> shell -> core.

Everything below the host is the gateware a ULX3S runs (hw/uart.py, hw/serial_link.py), in Amaranth's
simulator at 4 clock cycles per bit; the host code is the one a board uses.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from accelkit.accelerators.gemm import GemmAccelerator
from accelkit.driver.kinds import get_kind
from accelkit.driver.serial_device import SerialDevice
from accelkit.driver.trace import RecordingDevice, replay
from accelkit.errors import DeviceError, ParameterError
from accelkit.hw.serial_link import SerialShellTop
from accelkit.hw.uart import UartReceiver, UartTransmitter
from accelkit.sim.serial_sim import SimulatedSerialPort

DIVISOR = 4
CHUNK = 8
PARAMS = {"rows": 2, "cols": 2, "data_width": 32, "k_max": 16, "a_depth": 16}


def test_uart_loopback_carries_every_byte_value():
    sent = list(range(256))
    received = []
    transmitter = UartTransmitter(divisor=5)
    receiver = UartReceiver(divisor=5, synchronize=False)
    from amaranth import Module
    m = Module()
    m.submodules.tx, m.submodules.rx = transmitter, receiver
    m.d.comb += receiver.rx.eq(transmitter.tx)
    sim = Simulator(m)
    sim.add_clock(1e-8)

    async def bench(ctx):
        for byte in sent:
            ctx.set(transmitter.input.payload, byte)
            ctx.set(transmitter.input.valid, 1)
            await ctx.tick().until(transmitter.input.ready)
            await ctx.tick()
            ctx.set(transmitter.input.valid, 0)
        await ctx.tick().repeat(200)

    async def collect(ctx):
        async for _, _, valid, payload in ctx.tick().sample(receiver.output.valid, receiver.output.payload):
            if valid:
                received.append(payload)

    sim.add_testbench(bench)
    sim.add_process(collect)
    sim.run()
    assert received == sent


def _board(uart):
    accelerator = GemmAccelerator(**PARAMS)
    port = SimulatedSerialPort(SerialShellTop(accelerator.shell(), divisor=DIVISOR, chunk_beats=CHUNK,
                                              synchronize=False, uart=uart))
    return accelerator, SerialDevice(port, accelerator.register_map(), divisor=DIVISOR, chunk_beats=CHUNK), port


@pytest.fixture(scope="module")
def serial_board():
    """The link, shell and core driven byte by byte (the UART's bit times left out: see the next test)."""
    return _board(uart=False)


def test_registers_through_the_uart_pins():
    accelerator, device, port = _board(uart=True)      # opening reads ID and INFO through the UART
    assert device.data_width == PARAMS["data_width"]
    device.write("K", 77)
    assert device.read("K") == 77
    assert port.cycles >= (3 * 3 + 7 + 2 * 5 + 2) * 10 * DIVISOR     # every byte took ten bit times


def test_a_layer_runs_bit_exact_through_the_serial_protocol(serial_board):
    accelerator, device, port = serial_board
    assert device.data_width == PARAMS["data_width"]
    # K = 24 > k_max = 16 and 20 input beats > CHUNK: several jobs, several chunks each.
    layer, (x,) = get_kind("fc").random(np.random.default_rng(7), batch=3, k=12, n=5)
    plan = accelerator.plan(layer, x.shape)
    output, stats = accelerator.run(plan, device, x)
    assert np.array_equal(output, layer.reference(x))
    assert stats.macs == accelerator.estimate(plan, device.dma).macs
    assert port.bytes_written > stats.bytes_in      # the data went over the wire, framed


def test_a_verilator_trace_replays_on_the_serial_link(serial_board, device_pool):
    accelerator, device, _ = serial_board
    verilator_accel, verilator = device_pool(PARAMS)
    layer, (x,) = get_kind("conv2d").random(np.random.default_rng(2), height=3, width=3, in_channels=2,
                                             out_channels=3, kernel=2)
    recorder = RecordingDevice(verilator)
    verilator_accel.run(verilator_accel.plan(layer, x.shape), recorder, x)
    report = replay(recorder.trace, device)
    assert report.ok, report.mismatches
    assert report.jobs >= 1 and report.receives >= 1
    # The shell counted the cycles the UART took: longer than the simulated DMA.
    assert any(t["register"] == "CYCLES" and t["replayed"] > t["recorded"] for t in report.timing)


def test_the_link_refuses_bad_settings_and_reports_a_silent_board():
    accelerator = GemmAccelerator(**PARAMS)
    with pytest.raises(ParameterError, match="divisor"):
        SerialShellTop(accelerator.shell(), divisor=2)
    with pytest.raises(ParameterError, match="chunk_beats"):
        SerialShellTop(accelerator.shell(), divisor=8, chunk_beats=0)

    class Silent:
        name = "/dev/ttyNOTHING"

        def write(self, data):
            return len(data)

        def read(self, size=1):
            return b""

    with pytest.raises(DeviceError, match="no answer from the board on /dev/ttyNOTHING"):
        SerialDevice(Silent(), accelerator.register_map(), divisor=DIVISOR)
