import pytest

from accelkit.accelerators.gemm import GemmCore
from accelkit.hw.registers import Register, RegisterMap, SHELL_REGISTERS, CONFIG_BASE


def test_shell_registers_below_config_base():
    assert all(reg.offset < CONFIG_BASE for reg in SHELL_REGISTERS)
    assert {"CTRL", "STATUS", "CYCLES", "BUSY_CYCLES", "IN_STALL_CYCLES", "OUT_STALL_CYCLES", "MACS_LO",
            "MACS_HI"} <= {reg.name for reg in SHELL_REGISTERS}


def test_core_register_map_extends_shell():
    regs = GemmCore.register_map()
    assert regs["K"].offset == CONFIG_BASE
    assert regs["CTRL"] == SHELL_REGISTERS["CTRL"]


def test_duplicate_offsets_and_names_refused():
    with pytest.raises(ValueError, match="offset 0x0 declared twice"):
        RegisterMap((Register("A", 0), Register("B", 0)))
    with pytest.raises(ValueError, match="name 'A' declared twice"):
        RegisterMap((Register("A", 0), Register("A", 4)))


def test_signed_encode_decode_and_range():
    reg = Register("ZP", 0x40, width=8, signed=True)
    assert reg.decode(reg.encode(-5)) == -5
    with pytest.raises(ValueError, match="does not fit 8 signed bits"):
        reg.encode(200)


def test_unknown_register_names_known_ones():
    with pytest.raises(KeyError, match="known: CTRL"):
        SHELL_REGISTERS["NOPE"]
