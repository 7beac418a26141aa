"""A registered multiply that becomes a hard multiplier block with its own registers on the ECP5.

Yosys ``synth_ecp5`` maps ``a * b`` onto a MULT18X18D but leaves the
registers around it in the fabric: the operand registers' outputs and the
product register's input then cross the routing between the DSP column and the
logic, and on the placed-and-routed designs those two hops were the longest
part of the critical paths. A MULT18X18D has an input register on each operand
and an output register of its own; instantiating it with them on
(``REG_INPUTA``/``REG_INPUTB``/``REG_OUTPUT``) makes the multiply a
register-to-register path inside the block.

The code is written once, for every target, in terms of two fabric registers
the caller already has:

* ``a_held`` and ``b_held``: registers that load ``a`` and ``b`` when
  ``a_enable`` and ``b_enable`` are set (the caller owns and loads them);
* the product register, loaded with ``a_held * b_held`` when ``p_enable`` is set.

On a simulator or a Xilinx flow the product is exactly that fabric register.
On an ECP5 (an elaboration whose ``platform`` has ``family == "ecp5"``: the
Amaranth Lattice platforms, or :data:`ECP5_TIMING` for the timing flow) the
block's input registers load ``a`` and ``b`` with the same enables, so they
hold what ``a_held`` and ``b_held`` hold, and its output register is the
product register: the same cycle-by-cycle behaviour, so simulation of the
plain form stands for the instance.
"""

from amaranth import ClockSignal, Const, Instance, Signal, signed, unsigned

__all__ = ["registered_product", "ECP5_TIMING", "on_ecp5"]

_PORT_BITS = 18


class _Ecp5StandIn:
    """The one thing the cores ask of a platform when they elaborate: which FPGA family it is."""

    family = "ecp5"

    def __repr__(self):
        return "ECP5_TIMING"


#: Passed as ``platform`` when converting a design for the ECP5 timing flow (no pins, no clocks needed).
ECP5_TIMING = _Ecp5StandIn()


def on_ecp5(platform) -> bool:
    return getattr(platform, "family", None) == "ecp5"


def _port(value, signed_, name):
    """``value`` extended to the block's 18-bit operand port."""
    width = len(value)
    if width > _PORT_BITS or (not signed_ and width == _PORT_BITS):
        raise ValueError(f"{name} is {width} bits {'signed' if signed_ else 'unsigned'}; a MULT18X18D "
                         f"operand takes at most 18 signed or 17 unsigned bits")
    return value.as_signed() if signed_ else value.as_unsigned()


def registered_product(m, platform, name, *, a, b, a_held, b_held, a_enable=1, b_enable=1, p_enable=1):
    """The registered product ``a_held * b_held`` (loaded when ``p_enable``), as a new signal.

    ``a_held``/``b_held`` must be registers the caller loads with ``a``/``b``
    when ``a_enable``/``b_enable`` are set; their shapes give the product's
    signedness and width (at most 18 bits signed, 17 unsigned, each). The
    product register has no reset: its value means something only when the
    caller's flags say so.
    """
    a_signed, b_signed = a_held.shape().signed, b_held.shape().signed
    width = len(a_held) + len(b_held)
    shape = signed(width) if (a_signed or b_signed) else unsigned(width)
    product = Signal(shape, name=f"{name}_product", reset_less=True)
    if not on_ecp5(platform):
        with m.If(p_enable):
            m.d.sync += product.eq(a_held * b_held)
        return product
    a_port = Signal(signed(_PORT_BITS) if a_signed else unsigned(_PORT_BITS), name=f"{name}_a_port")
    b_port = Signal(signed(_PORT_BITS) if b_signed else unsigned(_PORT_BITS), name=f"{name}_b_port")
    p_port = Signal(36, name=f"{name}_p_port")
    m.d.comb += [a_port.eq(_port(a, a_signed, f"{name}'s A operand")),
                 b_port.eq(_port(b, b_signed, f"{name}'s B operand"))]
    # A mixed-sign product: the unsigned operand was zero-extended into 18 bits, so both ports
    # can be signed whenever either is.
    either_signed = int(a_signed or b_signed)
    ports = {f"i_A{bit}": a_port[bit] for bit in range(_PORT_BITS)}
    ports.update({f"i_B{bit}": b_port[bit] for bit in range(_PORT_BITS)})
    ports.update({f"i_C{bit}": Const(0, 1) for bit in range(_PORT_BITS)})
    ports.update({f"o_P{bit}": p_port[bit] for bit in range(36)})
    m.submodules[f"{name}_mult"] = Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
        p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE1", p_REG_INPUTB_RST="RST0",
        p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE2", p_REG_OUTPUT_RST="RST0",
        p_REG_PIPELINE_CLK="NONE", p_REG_INPUTC_CLK="NONE",
        p_GSR="DISABLED", p_RESETMODE="SYNC",
        i_SIGNEDA=Const(either_signed, 1), i_SIGNEDB=Const(either_signed, 1),
        i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
        i_CLK0=ClockSignal("sync"),
        i_CLK1=Const(0, 1), i_CLK2=Const(0, 1), i_CLK3=Const(0, 1),
        i_CE0=a_enable, i_CE1=b_enable, i_CE2=p_enable, i_CE3=Const(0, 1),
        i_RST0=Const(0, 1), i_RST1=Const(0, 1), i_RST2=Const(0, 1), i_RST3=Const(0, 1),
        **ports)
    m.d.comb += product.eq(p_port[:width])
    return product
