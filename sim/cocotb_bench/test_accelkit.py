"""cocotb side of :class:`accelkit.sim.cocotb_device.CocotbDevice`.

The simulator runs this module; its one test connects back to the device in
the caller's process and executes that device's primitives one request at a
time. While the test waits for the next request the whole simulator is
blocked, so simulated time only passes inside a primitive, exactly as with the
native harness.

Per-cycle rules (DMA drive, sampling, arming, interrupt) are the ones of
``accelkit/sim/streams.py`` and ``native/harness.cpp``: every clock edge is
accounted for by :meth:`TB._service`, whatever else is running.
"""

import json
import logging
import os
import traceback
import warnings
from multiprocessing.connection import Client

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import Event, RisingEdge, with_timeout
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from accelkit.driver.device import DmaTiming
from accelkit.sim.streams import StreamModel

# Must match accelkit.sim.cocotb_device.CONFIG_VARIABLE (not imported from there
# so that the simulator does not load the Verilog converter).
CONFIG_VARIABLE = "ACCELKIT_COCOTB_CONFIG"

CLOCK_PERIOD_NS = 10
# A register access takes a handful of cycles; far more means the bus is stuck.
REGISTER_TIMEOUT_CYCLES = 10_000

# cocotbext-axi 0.1.28 still calls APIs that cocotb 2 deprecated (setimmediatevalue,
# Task.kill, Event.data, Edge); they work, the warnings would only flood the log.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.")


class _Run:
    """A ``_run`` request in progress, advanced by the per-cycle coroutine."""

    def __init__(self, budget):
        self.budget = budget
        self.cycles = 0
        self.result = None
        self.done = Event()


class TB:
    def __init__(self, dut, beat_bytes, ctrl_offset, timing):
        for port in ("s_axis_tdata", "m_axis_tdata"):
            width = len(getattr(dut, port))
            if width != 8 * beat_bytes:
                raise ValueError(f"the device was opened for {8 * beat_bytes}-bit beats but {port} of "
                                 f"{dut._name} is {width} bits wide")
        self.dut = dut
        self.ctrl_offset = ctrl_offset
        self.streams = StreamModel(beat_bytes, timing)
        self.receives = []          # this job's receive buffers, in queue order
        self.total_cycles = 0
        self._run = None
        # Stream inputs must not float before the first drive.
        for name in ("s_axis_tvalid", "s_axis_tdata", "s_axis_tlast", "m_axis_tready"):
            getattr(dut, name).value = 0
        dut.rst.value = 1
        # AxiLiteMaster's per-transaction INFO lines cost more than the transaction itself.
        logging.getLogger(f"cocotb.{dut._name}.s_axi").setLevel(logging.WARNING)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi"), dut.clk, dut.rst)

    async def start(self):
        cocotb.start_soon(Clock(self.dut.clk, CLOCK_PERIOD_NS, unit="ns").start())
        cocotb.start_soon(self._service())
        for _ in range(2):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        self.total_cycles = 0

    async def _service(self):
        """Drive the DMA channels for one cycle, then account for the edge that ends it.

        At ``RisingEdge`` the simulator has not yet evaluated the edge, so the
        values read there are the ones the flops sample; what is written there
        takes effect after the edge, for the next cycle. This is the harness's
        "drive, sample before the edge, tick" in cocotb terms.
        """
        dut = self.dut
        # Handles looked up once: attribute lookup on dut is not free at this rate.
        s_valid_h, s_data_h, s_last_h = dut.s_axis_tvalid, dut.s_axis_tdata, dut.s_axis_tlast
        s_ready_h, m_valid_h, m_data_h = dut.s_axis_tready, dut.m_axis_tvalid, dut.m_axis_tdata
        m_ready_h = dut.m_axis_tready
        awvalid_h, awready_h = dut.s_axi_awvalid, dut.s_axi_awready
        awaddr_h, wdata_h = dut.s_axi_awaddr, dut.s_axi_wdata
        irq_h = dut.irq
        streams, ctrl = self.streams, self.ctrl_offset
        edge = RisingEdge(dut.clk)
        shown = (False, 0, False, False)     # what the stream inputs hold now
        while True:
            valid, data, last, ready = drive = streams.drive()
            if drive != shown:
                # A signal write costs more than the rest of the cycle's Python; skip unchanged ones.
                if valid != shown[0]:
                    s_valid_h.value = int(valid)
                if data != shown[1]:
                    s_data_h.value = data
                if last != shown[2]:
                    s_last_h.value = int(last)
                if ready != shown[3]:
                    m_ready_h.value = int(ready)
                shown = drive
            await edge
            s_ready = valid and s_ready_h.value == 1
            m_valid = ready and m_valid_h.value == 1
            m_data = m_data_h.value.to_unsigned() if m_valid else 0
            word = (wdata_h.value.to_unsigned() if awvalid_h.value == 1 and awready_h.value == 1
                    and awaddr_h.value.to_unsigned() == ctrl else 0)
            interrupt = irq_h.value == 1
            streams.edge(valid, s_ready, m_valid, ready, m_data, bool(word & 1), bool(word & 2))
            self.total_cycles += 1
            run = self._run
            if run is None:
                continue
            if interrupt:
                run.result = (True, run.cycles, self._received())
                streams.finish()
                self.receives = []
            else:
                run.cycles += 1
                if run.cycles < run.budget:
                    continue
                run.result = (False, run.budget, self._received())
                # A timed-out job's data must not feed the next job.
                streams.finish()
                self.receives = []
            self._run = None
            run.done.set()

    def _received(self):
        return [bytes(buffer) for buffer in self.receives]

    async def run(self, budget):
        if budget <= 0:
            return False, 0, self._received()
        run = self._run = _Run(budget)
        await run.done.wait()
        return run.result

    async def read_register(self, offset):
        return await with_timeout(self.axil.read_dword(offset), REGISTER_TIMEOUT_CYCLES * CLOCK_PERIOD_NS, "ns")

    async def write_register(self, offset, word):
        await with_timeout(self.axil.write_dword(offset, word), REGISTER_TIMEOUT_CYCLES * CLOCK_PERIOD_NS, "ns")

    def dma_send(self, data):
        self.streams.queue_send(bytes(data))

    def dma_receive(self, nbytes):
        self.receives.append(self.streams.queue_receive(nbytes))

    async def execute(self, request):
        kind, *args = request
        if kind == "read":
            return await self.read_register(*args)
        if kind == "write":
            return await self.write_register(*args)
        if kind == "send":
            return self.dma_send(*args)
        if kind == "receive":
            return self.dma_receive(*args)
        if kind == "run":
            return await self.run(*args)
        if kind == "cycles":
            return self.total_cycles
        raise ValueError(f"unknown request {kind!r}")


@cocotb.test()
async def accelkit_device(dut):
    """Serve one CocotbDevice until it closes."""
    config = json.loads(os.environ[CONFIG_VARIABLE])
    # Connecting before the clock starts: if the device is gone there is nothing to simulate.
    with Client(config["address"], family="AF_UNIX", authkey=bytes.fromhex(config["authkey"])) as conn:
        try:
            tb = TB(dut, config["beat_bytes"], config["ctrl_offset"],
                    DmaTiming(config["bytes_per_cycle"], config["latency"]))
            await tb.start()
        except Exception as error:
            conn.send(("error", f"{type(error).__name__}: {error}", traceback.format_exc()))
            raise
        conn.send(("ok", {"pid": os.getpid()}))
        while True:
            try:
                request = conn.recv()     # blocks the simulator, on purpose
            except EOFError:
                raise RuntimeError("the CocotbDevice closed its connection without saying close") from None
            if request[0] == "close":
                conn.send(("ok", tb.total_cycles))
                return
            try:
                result = await tb.execute(request)
            except Exception as error:   # reported to the caller, which raises DeviceError
                conn.send(("error", f"{type(error).__name__}: {error}", traceback.format_exc()))
            else:
                conn.send(("ok", result))
