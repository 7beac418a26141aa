"""Device backed by Amaranth's own Python simulator: no build step, for small designs."""

import numpy as np
from amaranth.sim import Simulator

from ..driver.device import Device, DmaTiming
from .streams import StreamModel

__all__ = ["AmaranthDevice"]


class AmaranthDevice(Device):
    """Simulates an :class:`~accelkit.hw.shell.AcceleratorShell` cycle by cycle in Python.

    ``trace`` names a VCD file to write. Speed is a few thousand cycles per
    second: use it for small arrays and shapes.
    """

    backend = "amaranth"

    def __init__(self, shell, dma: DmaTiming | None = None, trace=None):
        super().__init__(shell.register_map, shell.data_width, dma)
        self.shell = shell
        self.streams = StreamModel(self.beat_bytes, self.dma)
        self._ctrl = self.register_map["CTRL"].offset
        self._command = None
        self._result = None
        self.sim = Simulator(shell)
        self.sim.add_clock(1e-8)
        self.sim.add_testbench(self._serve)
        self._trace = None
        if trace is not None:
            self._trace = self.sim.write_vcd(str(trace))
            self._trace.__enter__()

    # Each device call hands a coroutine to the testbench and advances the
    # simulator until the testbench has finished it. The testbench waits for the
    # next call inside an ordinary (DMA-serviced) cycle, so no clock edge ever
    # passes without the stream model seeing it.
    async def _serve(self, ctx):
        while True:
            if self._command is None:
                await self._cycle(ctx)
                continue
            command, self._command = self._command, None
            self._result = await command(ctx)
            self._done = True

    def _call(self, command):
        self._command, self._done = command, False
        while not self._done:
            self.sim.advance()
        return self._result

    async def _cycle(self, ctx):
        """One clock cycle with the DMA channels serviced; returns after the edge."""
        s = self.shell
        valid, data, last, ready = self.streams.drive()
        ctx.set(s.s_axis_tvalid, valid)
        ctx.set(s.s_axis_tdata, data)
        ctx.set(s.s_axis_tlast, last)
        ctx.set(s.m_axis_tready, ready)
        sampled = (valid, ctx.get(s.s_axis_tready), ctx.get(s.m_axis_tvalid), ready, ctx.get(s.m_axis_tdata))
        ctrl_write = (ctx.get(s.s_axi_awvalid) and ctx.get(s.s_axi_awready)
                      and ctx.get(s.s_axi_awaddr) == self._ctrl)
        word = ctx.get(s.s_axi_wdata) if ctrl_write else 0
        interrupt = ctx.get(s.irq)
        await ctx.tick()
        self.streams.edge(*sampled, bool(word & 1), bool(word & 2))
        return interrupt

    def write_register(self, offset, word):
        s = self.shell

        async def command(ctx):
            ctx.set(s.s_axi_bready, 1)
            ctx.set(s.s_axi_awaddr, offset)
            ctx.set(s.s_axi_wdata, word)
            ctx.set(s.s_axi_wstrb, 0xF)
            ctx.set(s.s_axi_awvalid, 1)
            ctx.set(s.s_axi_wvalid, 1)
            while not ctx.get(s.s_axi_awready):
                await self._cycle(ctx)
            await self._cycle(ctx)
            ctx.set(s.s_axi_awvalid, 0)
            ctx.set(s.s_axi_wvalid, 0)
            while not ctx.get(s.s_axi_bvalid):
                await self._cycle(ctx)
            await self._cycle(ctx)
        self._call(command)

    def read_register(self, offset):
        s = self.shell

        async def command(ctx):
            ctx.set(s.s_axi_rready, 1)
            ctx.set(s.s_axi_araddr, offset)
            ctx.set(s.s_axi_arvalid, 1)
            while not ctx.get(s.s_axi_arready):
                await self._cycle(ctx)
            await self._cycle(ctx)
            ctx.set(s.s_axi_arvalid, 0)
            while not ctx.get(s.s_axi_rvalid):
                await self._cycle(ctx)
            value = ctx.get(s.s_axi_rdata)
            await self._cycle(ctx)
            return value
        return self._call(command)

    def dma_send(self, data):
        raw = bytes(np.ascontiguousarray(data).view(np.uint8).reshape(-1))
        self._check_beats(len(raw), "a DMA send")
        self.streams.queue_send(raw)

    def dma_receive(self, nbytes):
        self._check_beats(nbytes, "a DMA receive")
        return self.streams.queue_receive(nbytes)

    def _run(self, cycle_budget):
        async def command(ctx):
            result = False, cycle_budget
            for cycle in range(cycle_budget):
                if await self._cycle(ctx):
                    result = True, cycle
                    break
            # Inside the command, before the test bench drives its next idle cycle: a
            # timed-out job's data must not feed the next job.
            self.streams.finish()
            return result
        return self._call(command)

    def close(self):
        if self._trace is not None:
            self._trace.__exit__(None, None, None)
            self._trace = None
