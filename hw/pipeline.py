"""Small pipeline helpers shared by the cores."""

from amaranth import Signal

__all__ = ["delayed"]


def delayed(m, value, cycles, name, reset_less=False):
    """``value`` through ``cycles`` registers added to ``m``'s sync domain (a plain delay line).

    ``reset_less=True`` for data whose validity travels elsewhere: a verilated model
    then computes no reset multiplexer for them in every evaluation.
    """
    if not isinstance(cycles, int) or cycles < 0:
        raise ValueError(f"delay must be a non-negative integer number of cycles, not {cycles!r}")
    for index in range(cycles):
        held = Signal.like(value, name=f"{name}_d{index}", reset_less=reset_less)
        m.d.sync += held.eq(value)
        value = held
    return value
