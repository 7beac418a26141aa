"""Small pipeline helpers shared by the cores."""

from amaranth import Signal

__all__ = ["delayed", "LastFlag"]


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


class LastFlag:
    """A register holding ``counter + 1 == limit``, kept beside a counter that only
    restarts at 0 or steps by one: put :meth:`restart` or :meth:`step` in the same
    branch as the counter's own update. A loop end then comes from one flop instead
    of an adder and a comparator in front of the control logic; the adder feeds
    only this register. ``limit`` must hold still while the counter runs.
    """

    def __init__(self, counter, limit, name):
        self.counter, self.limit = counter, limit
        self.flag = Signal(name=name)

    def restart(self):
        """The flag's update for ``counter <- 0``."""
        return self.flag.eq(self.limit == 1)

    def step(self):
        """The flag's update for ``counter <- counter + 1``."""
        return self.flag.eq(self.counter + 2 == self.limit)
