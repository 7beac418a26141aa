"""Vivado TCL that builds an exported accelerator into a bitstream and a hardware handoff.

The script is written from a :class:`~.block_design.BlockDesign`: it packages
the Verilog top as an IP (bus interfaces inferred from the ``s_axi_*``,
``s_axis_*`` and ``m_axis_*`` port names, clock and active-high reset
associated explicitly), builds the block design cell by cell and net by net
(no connection automation, so every connection is written down here and can be
checked), assigns the address map, runs synthesis and implementation to a
bitstream and copies ``TOP.bit`` and ``TOP.hwh`` next to the script.

The fabric clock is the PS's; the PS IP's own constraints declare it, so
Vivado times every path against it, and the script refuses to hand over a
bitstream whose worst setup or hold slack is negative (set
``ACCELKIT_ALLOW_TIMING_FAILURE=1`` to get one anyway).

This TCL has not been run in Vivado by accelkit's tests: they run it under
``tclsh`` with stub Vivado commands that record the block design.
"""

from .block_design import ACCEL_LIBRARY, ACCEL_VENDOR, BlockDesign

__all__ = ["build_tcl"]


def _hex(value):
    return f"0x{value:08X}"


def _config(items):
    return " ".join(f"CONFIG.{key} {{{value}}}" for key, value in items)


def build_tcl(design: BlockDesign, *, generator: str) -> str:
    """The build script's text; ``generator`` names the tool and version that wrote it."""
    board = design.board
    ps = board.ps_cell
    lines = [
        f"# Vivado build of {design.top} for {board.name}, written by {generator}.",
        "# Run: vivado -mode batch -source build.tcl   (or ./build.sh)",
        "# Not run in Vivado by accelkit's own tests (they check it under tclsh with stub commands).",
        "",
        "set script_dir [file dirname [file normalize [info script]]]",
        f"set top {design.top}",
        f"set bd {design.name}",
        f"set part {board.part}",
        f"set board_part {board.board_part}",
        f"set clock_mhz {design.clock_mhz:g}",
        "set build_dir [file join $script_dir build]",
        "set jobs [expr {[info exists ::env(ACCELKIT_JOBS)] ? $::env(ACCELKIT_JOBS) : 4}]",
        "",
        "# The newest version of a Xilinx IP this Vivado has (the IP versions differ between releases).",
        "proc latest_ip {name} {",
        "    set found [lsort -dictionary [get_ipdefs -all xilinx.com:ip:${name}:*]]",
        "    if {[llength $found] == 0} { error \"accelkit: this Vivado has no IP xilinx.com:ip:${name}\" }",
        "    return [lindex $found end]",
        "}",
        "",
        "# 1. Package the accelerator's Verilog top as an IP.",
        "create_project -force ip_package [file join $build_dir ip_package] -part $part",
        "add_files -norecurse [file join $script_dir ${top}.v]",
        "set_property top $top [current_fileset]",
        f"ipx::package_project -root_dir [file join $build_dir ip] -vendor {ACCEL_VENDOR} "
        f"-library {ACCEL_LIBRARY} -taxonomy /UserIP -import_files -set_current true",
        "set core [ipx::current_core]",
        "set_property name $top $core",
        "set_property version 1.0 $core",
        "set_property display_name $top $core",
        "ipx::infer_bus_interface clk xilinx.com:signal:clock_rtl:1.0 $core",
        "ipx::infer_bus_interface rst xilinx.com:signal:reset_rtl:1.0 $core",
        "ipx::infer_bus_interface irq xilinx.com:signal:interrupt_rtl:1.0 $core",
        "set reset_polarity [ipx::add_bus_parameter POLARITY [ipx::get_bus_interfaces rst -of_objects $core]]",
        "set_property value ACTIVE_HIGH $reset_polarity",
        "set irq_sensitivity [ipx::add_bus_parameter SENSITIVITY [ipx::get_bus_interfaces irq -of_objects $core]]",
        "set_property value LEVEL_HIGH $irq_sensitivity",
        "ipx::associate_bus_interfaces -busif s_axi -clock clk $core",
        "ipx::associate_bus_interfaces -busif s_axis -clock clk $core",
        "ipx::associate_bus_interfaces -busif m_axis -clock clk $core",
        "ipx::associate_bus_interfaces -clock clk -reset rst $core",
        "# The register window the address map gives the accelerator.",
        "set_property range 65536 [ipx::get_address_blocks reg0 -of_objects [ipx::get_memory_maps s_axi -of_objects $core]]",
        "ipx::create_xgui_files $core",
        "ipx::update_checksums $core",
        "ipx::check_integrity $core",
        "ipx::save_core $core",
        "close_project",
        "",
        "# 2. The block design.",
        "create_project -force $top [file join $build_dir project] -part $part",
        "set_property board_part $board_part [current_project]",
    ]
    if board.board_connections:
        connections = " ".join(f"{name} {value}" for name, value in board.board_connections)
        lines.append(f"set_property board_connections {{{connections}}} [current_project]")
    lines += [
        "set_property ip_repo_paths [file join $build_dir ip] [current_project]",
        "update_ip_catalog",
        "create_bd_design $bd",
    ]
    for cell in design.cells:
        vlnv = (f"{cell.vendor}:{cell.ip}:1.0" if cell.vendor != "xilinx.com:ip"
                else f"[latest_ip {cell.ip}]")
        lines.append(f"create_bd_cell -type ip -vlnv {vlnv} {cell.name}")
        if cell.name == ps:
            # The board preset configures DDR and MIO; only the PS's external pins come from automation.
            rule = "processing_system7" if board.ps == "ps7" else "zynq_ultra_ps_e"
            external = 'make_external "FIXED_IO, DDR" ' if board.ps == "ps7" else ""
            lines.append(f"apply_bd_automation -rule xilinx.com:bd_rule:{rule} "
                         f"-config {{{external}apply_board_preset \"1\"}} [get_bd_cells {cell.name}]")
        if cell.config:
            lines.append(f"set_property -dict [list {_config(cell.config)}] [get_bd_cells {cell.name}]")
    lines.append("")
    for source, sink in design.interface_nets:
        lines.append(f"connect_bd_intf_net [get_bd_intf_pins {source}] [get_bd_intf_pins {sink}]")
    for source, sinks in design.nets:
        pins = " ".join(f"[get_bd_pins {pin}]" for pin in (source, *sinks))
        lines.append(f"connect_bd_net {pins}")
    lines.append("")
    for segment in design.addresses:
        lines.append(f"assign_bd_address -offset {_hex(segment.offset)} -range {_hex(segment.range)} "
                     f"-target_address_space [get_bd_addr_spaces {segment.master}] "
                     f"[get_bd_addr_segs {segment.slave}] -force")
    lines += [
        "validate_bd_design",
        "save_bd_design",
        "",
        "# 3. Synthesis and implementation to a bitstream.",
        "set bd_file [get_files ${bd}.bd]",
        "generate_target all $bd_file",
        "add_files -norecurse [make_wrapper -files $bd_file -top]",
        "set_property top ${bd}_wrapper [current_fileset]",
        "launch_runs impl_1 -to_step write_bitstream -jobs $jobs",
        "wait_on_run impl_1",
        "if {[get_property PROGRESS [get_runs impl_1]] ne \"100%\"} {",
        "    error \"accelkit: implementation did not finish; see [get_property DIRECTORY [get_runs impl_1]]\"",
        "}",
        "",
        "# 4. Timing: the PS's clock constraint covers every path of the design.",
        "set setup_slack [get_property STATS.WNS [get_runs impl_1]]",
        "set hold_slack [get_property STATS.WHS [get_runs impl_1]]",
        "open_run impl_1",
        "report_timing_summary -file [file join $script_dir timing_summary.txt]",
        "report_utilization -file [file join $script_dir utilization.txt]",
        "puts \"accelkit: fabric clock $clock_mhz MHz, worst setup slack $setup_slack ns, worst hold slack $hold_slack ns\"",
        "if {$setup_slack < 0 || $hold_slack < 0} {",
        "    if {![info exists ::env(ACCELKIT_ALLOW_TIMING_FAILURE)]} {",
        "        error \"accelkit: timing not met at $clock_mhz MHz (setup $setup_slack ns, hold $hold_slack ns); \\",
        "re-export with a slower --clock-mhz, or set ACCELKIT_ALLOW_TIMING_FAILURE=1 to keep the bitstream\"",
        "    }",
        "    puts \"accelkit: WARNING: timing not met; the bitstream is kept because ACCELKIT_ALLOW_TIMING_FAILURE is set\"",
        "}",
        "",
        "# 5. The bitstream and the hardware handoff, with the same base name (what pynq.Overlay expects).",
        "set bit [glob -nocomplain [file join [get_property DIRECTORY [get_runs impl_1]] ${bd}_wrapper.bit]]",
        "set hwh [glob -nocomplain [file join $build_dir project *.gen sources_1 bd $bd hw_handoff ${bd}.hwh] \\",
        "    [file join $build_dir project *.srcs sources_1 bd $bd hw_handoff ${bd}.hwh]]",
        "if {[llength $bit] == 0 || [llength $hwh] == 0} { error \"accelkit: no bitstream or hardware handoff was written\" }",
        "file copy -force [lindex $bit 0] [file join $script_dir ${top}.bit]",
        "file copy -force [lindex $hwh 0] [file join $script_dir ${top}.hwh]",
        "puts \"accelkit: wrote [file join $script_dir ${top}.bit] and [file join $script_dir ${top}.hwh]\"",
        "",
    ]
    return "\n".join(lines)
