"""The FPGA power model: each term follows its inputs."""

import pytest

from accelkit.sw.hardware.power import ENERGY_PJ, design_energy

RESOURCES = {"lut": 1000, "ff": 2000, "dsp": 10, "bram36": 4}


def test_terms():
    e = design_energy(RESOURCES, cycles=1000, busy_cycles=500, bytes_moved=100, clock_mhz=100.0, static_watts=0.1)
    assert e.static_uj == pytest.approx(0.1 * 1000 / 100e6 * 1e6)
    logic = 1000 * 0.5 * (1000 * ENERGY_PJ["lut"] + 2000 * ENERGY_PJ["ff"] + 10 * ENERGY_PJ["dsp"])
    assert e.logic_uj == pytest.approx(logic / 1e6)
    assert e.memory_uj == pytest.approx(1000 * 4 * ENERGY_PJ["bram36"] / 1e6)
    assert e.data_movement_uj == pytest.approx(100 * ENERGY_PJ["dram_byte"] / 1e6)
    assert e.total_uj == pytest.approx(e.static_uj + e.logic_uj + e.memory_uj + e.data_movement_uj)


def test_an_idle_array_costs_no_logic_energy_and_bad_values_are_refused():
    assert design_energy(RESOURCES, cycles=10, busy_cycles=0, bytes_moved=0, clock_mhz=100.0,
                         static_watts=0.1).logic_uj == 0
    with pytest.raises(ValueError, match="clock"):
        design_energy(RESOURCES, cycles=10, busy_cycles=0, bytes_moved=0, clock_mhz=0, static_watts=0.1)
