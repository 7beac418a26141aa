"""Mutation testing: injected faults are caught by the checks that should catch them, and nothing else alarms."""

import pytest

from accelkit.accelerators.gemm import GemmAccelerator
from accelkit.driver.device import DmaTiming
from accelkit.errors import ParameterError
from accelkit.sw.benchmarks.mutation import mutation_table


def test_a_subset_of_faults_is_caught_and_the_clean_design_passes():
    results = mutation_table(GemmAccelerator(), DmaTiming(8, 0), faults=["zero_point_dropped", "cost_term_removed"],
                             cases=3)
    assert not any(check["caught"] for check in results["none"].values()), results["none"]
    # an output fault: conformance and diff see it, the cycle comparison cannot
    assert results["zero_point_dropped"]["conformance"]["caught"] and results["zero_point_dropped"]["diff"]["caught"]
    assert not results["zero_point_dropped"]["fidelity"]["caught"]
    # a cost-model fault: cycles, not outputs
    assert results["cost_term_removed"]["fidelity"]["caught"] and not results["cost_term_removed"]["diff"]["caught"]


def test_faults_stay_out_of_the_parameter_space():
    assert not set(GemmAccelerator.faults_available) & {p.name for p in GemmAccelerator.space.params}
    with pytest.raises(ParameterError, match="has no fault stuck_everything"):
        GemmAccelerator().with_faults("stuck_everything")
    assert GemmAccelerator().faults == frozenset() and GemmAccelerator().with_faults("tiles_swapped").faults


def test_a_stuck_pe_is_a_build_of_its_own_and_conformance_catches_it():
    from accelkit.sw.execution.devices import design_key
    clean = GemmAccelerator(**GemmAccelerator.small_params)
    stuck = clean.with_faults("stuck_pe")
    # a gateware fault never shares a cached build with the clean design; a host-side fault does
    assert design_key(stuck) != design_key(clean)
    assert design_key(clean.with_faults("tiles_swapped")) == design_key(clean)
    results = mutation_table(clean, DmaTiming(8, 0), faults=["stuck_pe"], checks=("conformance",), cases=3)
    assert not results["none"]["conformance"]["caught"], results["none"]
    assert results["stuck_pe"]["conformance"]["caught"]
    assert "cycles" not in results["stuck_pe"]["conformance"]["finding"]     # outputs differ, timing does not
