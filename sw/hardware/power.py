"""An FPGA power model for comparing design points: static power plus per-resource dynamic energy.

::

    E = P_static * cycles / f
        + cycles * sum_r(count_r * e_r * activity_r)
        + bytes_moved * e_byte

* ``e_r`` (``ENERGY_PJ``) is picojoules per resource per clock cycle at full
  activity. The values are order-of-magnitude figures for a 28 nm 7-series
  fabric at the 12.5% toggle rate vendor power estimators assume by default: a
  LUT with its routing a few tenths of a picojoule, a flip-flop a twentieth, a
  DSP48 slice or a block RAM tens of picojoules, an off-chip DRAM byte over a
  hundred (LPDDR/DDR3 interface energy of tens of pJ per bit).
* ``activity_r`` comes from the simulation counters: the share of cycles the
  array computes (``busy_cycles / cycles``) scales LUT, FF and DSP energy, since
  the arithmetic toggles only when operands stream through; block RAMs are
  taken as enabled on every cycle (the buffers are read or written while any
  stream moves), which overstates idle designs.
* ``P_static`` is the board's programmable-logic static power
  (``sw/dse/boards.py``), charged for the run's duration at its clock.

Limits: no routing-dependent or data-dependent toggle rates, no clock-tree
power beyond what the per-FF figure includes, no temperature dependence, and
the processing system (ARM cores, DDR controller) is left out. The model ranks
design points; it does not predict a board's measured power, and its
coefficients are stated rather than fitted to a measurement.
"""

__all__ = ["ENERGY_PJ", "energy_pj", "EnergyEstimate", "design_energy"]

from dataclasses import dataclass, asdict

#: picojoules per resource per active cycle, and per byte moved over the DMA streams
ENERGY_PJ = {"lut": 0.3, "ff": 0.05, "dsp": 15.0, "bram36": 25.0, "dram_byte": 120.0}

_LOGIC = ("lut", "ff", "dsp")


def _count(resources, name):
    return resources[name] if isinstance(resources, dict) else getattr(resources, name)


def energy_pj(resources, cycles, bytes_moved, coefficients=ENERGY_PJ):
    """(compute energy, data-movement energy) in picojoules, every resource active on every cycle."""
    per_cycle = sum(_count(resources, name) * coefficients[name] for name in ("lut", "ff", "dsp", "bram36"))
    return cycles * per_cycle, bytes_moved * coefficients["dram_byte"]


@dataclass(frozen=True)
class EnergyEstimate:
    """Energy of one run split by cause, in microjoules."""

    static_uj: float
    logic_uj: float
    memory_uj: float
    data_movement_uj: float

    @property
    def total_uj(self):
        return self.static_uj + self.logic_uj + self.memory_uj + self.data_movement_uj

    def as_dict(self):
        return {**asdict(self), "total_uj": self.total_uj}


def design_energy(resources, *, cycles, busy_cycles, bytes_moved, clock_mhz, static_watts,
                  coefficients=ENERGY_PJ) -> EnergyEstimate:
    """Energy of a run of ``cycles`` cycles at ``clock_mhz`` (see the module docstring for the model)."""
    if cycles < 0 or busy_cycles < 0 or bytes_moved < 0 or clock_mhz <= 0:
        raise ValueError(f"cycles ({cycles}), busy cycles ({busy_cycles}) and bytes ({bytes_moved}) must not be "
                         f"negative and the clock ({clock_mhz} MHz) must be positive")
    activity = min(1.0, busy_cycles / cycles) if cycles else 0.0
    logic = cycles * activity * sum(_count(resources, name) * coefficients[name] for name in _LOGIC)
    memory = cycles * _count(resources, "bram36") * coefficients["bram36"]
    static = static_watts * cycles / (clock_mhz * 1e6) * 1e12      # watts x seconds, in pJ
    return EnergyEstimate(static_uj=static / 1e6, logic_uj=logic / 1e6, memory_uj=memory / 1e6,
                          data_movement_uj=bytes_moved * coefficients["dram_byte"] / 1e6)
