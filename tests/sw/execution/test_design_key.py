"""The Verilog and simulator caches are keyed by a hash that must cover every source the design is built from."""

from accelkit.sw.execution import devices


def test_design_key_hashes_the_shell_and_every_accelerator():
    # A key that missed hw/ reused a stale build after a shell change (seen after the sw/ re-layout).
    assert (devices._HW / "shell.py").is_file()
    assert (devices._ACCELERATORS / "base.py").is_file()
