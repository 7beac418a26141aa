"""The clock a report turns cycles into time with, and where it came from.

Time is only shown at a clock someone measured or asked for: ``--clock-mhz``
when given, else the design's placed-and-routed Fmax on the ECP5-85F when that
result is cached (the one measured clock; a cautious stand-in for a Zynq), else
none: the report shows cycles and says the clock is unmeasured. Looking the
figure up never starts a place-and-route run.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReportClock", "report_clock", "UNMEASURED"]


@dataclass(frozen=True)
class ReportClock:
    """``mhz`` (None when unmeasured) and ``source``: "--clock-mhz", "ECP5-85F P&R" or "unmeasured"."""

    mhz: float | None
    source: str

    @property
    def hz(self):
        """Hertz, or None when unmeasured."""
        return None if self.mhz is None else self.mhz * 1e6

    def describe(self) -> str:
        """``"at 87.5 MHz (ECP5-85F P&R)"``, or what an unmeasured clock means."""
        if self.mhz is None:
            return ("clock unmeasured: no ECP5-85F place-and-route result of this design is cached "
                    "(`accelkit resources --target ecp5-85f` measures it; --clock-mhz sets one)")
        return f"at {self.mhz:g} MHz ({self.source})"

    def as_dict(self):
        """``clock_mhz`` and ``clock_source``, for JSON records."""
        return {"clock_mhz": self.mhz, "clock_source": self.source}


UNMEASURED = ReportClock(None, "unmeasured")


def report_clock(accelerators, clock_mhz=None, progress=None) -> ReportClock:
    """The clock for a report on ``accelerators`` (one bitstream: the slowest design sets the clock).

    ``clock_mhz`` (``--clock-mhz``) wins; otherwise every accelerator needs a
    cached ECP5 result, and the lowest Fmax is used.
    """
    if clock_mhz is not None:
        return ReportClock(float(clock_mhz), "--clock-mhz")
    from ..hardware.figures import measured_clock
    measured = [measured_clock(accelerator, progress) for accelerator in accelerators]
    if not measured or any(m is None for m in measured):
        return UNMEASURED
    mhz, source = min(measured)
    return ReportClock(mhz, source)
