"""The one place flexarray touches a requantizer: a fixed-latency, one-value-per-cycle component.

flexarray requantizes its accumulation-buffer words lane by lane on the way
out. It needs a requantizer with a ``valid`` in, a fixed ``LATENCY`` and a
``value`` out, whose per-channel inputs hold still while values are inside it
(flexarray changes them only between tiles, after the pipeline has drained).
Until the shared ``hw`` requantizer lands, this wraps the GEMM core's
``requantizer`` pipeline (reused, not copied) with every boundary registered and
a registered clamp; switching means changing this module only (the cost model
reads ``LATENCY`` from here).
"""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..gemm.gateware import requantizer

__all__ = ["LaneRequantizer", "LATENCY"]

#: Cycles from ``valid`` with an accumulator to ``out_valid`` with its int8 output.
LATENCY = 6


class LaneRequantizer(wiring.Component):
    """int32 accumulator + bias -> TFLite-exact int8, ``LATENCY`` cycles later (ports as ``hw``'s requantizer).

    ``multiplier`` (54 bits) and ``shifts`` follow ``driver.quant``'s encoding as
    the GEMM core takes them; ``float_mode`` selects FULLY_CONNECTED's float
    requantization, else CONV_2D's double rounding.
    """

    def __init__(self):
        super().__init__({
            "valid": In(1), "acc": In(signed(32)), "bias": In(signed(32)), "float_mode": In(1),
            "multiplier": In(54), "shifts": In(16), "zero_point": In(signed(8)),
            "act_min": In(signed(8)), "act_max": In(signed(8)),
            "out_valid": Out(1), "value": Out(signed(8)),
        })

    def elaborate(self, platform):
        m = Module()
        valid = [self.valid]
        for index in range(LATENCY):
            stage_valid = Signal(name=f"valid{index + 1}")
            m.d.sync += stage_valid.eq(valid[-1])
            valid.append(stage_valid)
        m.d.comb += self.out_valid.eq(valid[LATENCY])

        def stage(boundary, name, *fields):
            # every boundary registered, loaded only when a value moves in (no reset: data only)
            held = []
            for index, (value, shape) in enumerate(fields):
                register = Signal(shape, name=f"{name}_s{boundary}_{index}", reset_less=True)
                with m.If(valid[boundary - 1]):
                    m.d.sync += register.eq(value)
                held.append(register)
            return held

        scaled = requantizer(m, stage, "requant", (self.acc + self.bias)[:32].as_signed(), self.float_mode,
                             self.multiplier, self.shifts, self.zero_point)
        clamped = Mux(scaled < self.act_min, self.act_min, Mux(scaled > self.act_max, self.act_max, scaled))
        with m.If(valid[LATENCY - 1]):
            m.d.sync += self.value.eq(clamped[:8])
        return m
