# Stub Vivado commands for running accelkit's build.tcl under plain tclsh.
#
# Every command the build script may use is defined here and appends what it did to
# the record file ($::stub_record), one Tcl list per line; any other command is an
# error (so the script cannot use a Vivado command the test does not know). Pins of
# the accelerator cell are checked against the Verilog top's ports ($::accel_ports),
# pins of Xilinx IP against the names in their product guides (table below).
#
# Inputs (set before sourcing build.tcl): stub_record, accel_ports, stub_wns, stub_whs.

set ::stub_cells [dict create]
set ::stub_projects {}

proc record {args} {
    set f [open $::stub_record a]
    puts $f [join $args \t]
    close $f
}

# Pins and interfaces of the Xilinx IP the block design uses (PG082, PG201, PG085, PG247, PG164).
set ::ip_pins [dict create \
    processing_system7 {M_AXI_GP0 M_AXI_GP0_ACLK S_AXI_HP0 S_AXI_HP0_ACLK FCLK_CLK0 FCLK_RESET0_N IRQ_F2P DDR FIXED_IO} \
    zynq_ultra_ps_e {M_AXI_HPM0_FPD maxihpm0_fpd_aclk S_AXI_HP0_FPD saxihp0_fpd_aclk pl_clk0 pl_resetn0 pl_ps_irq0} \
    axi_dma {S_AXI_LITE M_AXI_MM2S M_AXI_S2MM M_AXIS_MM2S S_AXIS_S2MM s_axi_lite_aclk m_axi_mm2s_aclk m_axi_s2mm_aclk axi_resetn mm2s_introut s2mm_introut} \
    smartconnect {S00_AXI S01_AXI M00_AXI M01_AXI aclk aresetn} \
    proc_sys_reset {slowest_sync_clk ext_reset_in peripheral_aresetn peripheral_reset interconnect_aresetn} \
    xlconcat {In0 In1 In2 dout}]

# Address spaces of masters and segments of slaves, by IP.
set ::ip_spaces [dict create processing_system7 {Data} zynq_ultra_ps_e {Data} axi_dma {Data_MM2S Data_S2MM}]
set ::ip_segments [dict create \
    processing_system7 {S_AXI_HP0/HP0_DDR_LOWOCM} zynq_ultra_ps_e {S_AXI_HP0_FPD/HP0_DDR_LOW} \
    axi_dma {S_AXI_LITE/Reg}]

proc ip_of {cell} {
    if {![dict exists $::stub_cells $cell]} { error "stub: no cell named $cell" }
    return [dict get $::stub_cells $cell]
}

proc check_pin {path kind} {
    lassign [split $path /] cell pin
    set ip [ip_of $cell]
    if {$ip eq "accelerator"} {
        set known [expr {$kind eq "intf" ? {s_axi s_axis m_axis} : $::accel_ports}]
    } else {
        set known [dict get $::ip_pins $ip]
    }
    if {[lsearch -exact $known $pin] < 0} { error "stub: $cell ($ip) has no pin $pin" }
    return $path
}

proc ip_name {vlnv} {
    return [lindex [split $vlnv :] 2]
}

# --- projects and files ---
proc create_project {args} {
    set positional [lsearch -all -inline -not -glob $args -*]
    set part [lindex $args [expr {[lsearch -exact $args -part] + 1}]]
    lassign $positional name dir
    lappend ::stub_projects [list $name $dir]
    set ::stub_project_dir $dir
    record project $name $part
}
proc close_project {} { record close_project }
proc current_project {} { return project }
proc current_fileset {} { return sources_1 }
proc add_files {args} {
    set file [lindex $args end]
    record add_files $file
}
proc update_ip_catalog {} { record update_ip_catalog }
proc get_files {pattern} { return [file join $::stub_project_dir bd $pattern] }
proc generate_target {what file} { record generate_target $what }
proc make_wrapper {args} { return [file join $::stub_project_dir ${::bd}_wrapper.v] }

proc set_property {args} {
    if {[lindex $args 0] eq "-dict"} {
        set values [lindex $args 1]
        set target [lindex $args 2]
        foreach {key value} $values {
            if {![string match CONFIG.* $key]} { error "stub: set_property -dict expects CONFIG.* keys, not $key" }
            record config $target [string range $key 7 end] $value
        }
        return
    }
    lassign $args name value target
    record property $name $value $target
}

proc get_property {name object} {
    switch -- $name {
        PROGRESS { return "100%" }
        STATS.WNS { return $::stub_wns }
        STATS.WHS { return $::stub_whs }
        DIRECTORY { return [file join $::stub_project_dir runs impl_1] }
        default { error "stub: get_property $name is not modelled" }
    }
}

# --- IP packaging ---
namespace eval ipx {}
proc ipx::package_project {args} {
    record package [lindex $args [expr {[lsearch -exact $args -vendor] + 1}]] \
        [lindex $args [expr {[lsearch -exact $args -library] + 1}]]
}
proc ipx::current_core {} { return core }
proc ipx::infer_bus_interface {port vlnv core} {
    if {[lsearch -exact $::accel_ports $port] < 0} { error "stub: the Verilog top has no port $port" }
    record infer $port $vlnv
}
proc ipx::get_bus_interfaces {name args} { return $name }
proc ipx::add_bus_parameter {name interface} { return "$interface.$name" }
proc ipx::associate_bus_interfaces {args} {
    set clock [lindex $args [expr {[lsearch -exact $args -clock] + 1}]]
    set busif [expr {[lsearch -exact $args -busif] >= 0 ? [lindex $args [expr {[lsearch -exact $args -busif] + 1}]] : ""}]
    set reset [expr {[lsearch -exact $args -reset] >= 0 ? [lindex $args [expr {[lsearch -exact $args -reset] + 1}]] : ""}]
    record associate $clock $busif $reset
}
proc ipx::get_memory_maps {name args} { return $name }
proc ipx::get_address_blocks {name args} { return "[lindex $args end]/$name" }
proc ipx::create_xgui_files {core} {}
proc ipx::update_checksums {core} {}
proc ipx::check_integrity {core} {}
proc ipx::save_core {core} { record save_core }
proc get_ipdefs {args} {
    # Two versions, listed oldest last, so the script must pick the newest itself.
    set name [ip_name [lindex $args end]]
    return [list xilinx.com:ip:${name}:10.1 xilinx.com:ip:${name}:9.2]
}

# --- block design ---
proc create_bd_design {name} { record bd $name }
proc create_bd_cell {args} {
    set vlnv [lindex $args [expr {[lsearch -exact $args -vlnv] + 1}]]
    set name [lindex $args end]
    set ip [ip_name $vlnv]
    if {[string match accelkit:* $vlnv]} { set ip accelerator }
    if {$ip ne "accelerator" && ![dict exists $::ip_pins $ip]} { error "stub: unknown IP $vlnv" }
    dict set ::stub_cells $name $ip
    record cell $name $vlnv
}
proc apply_bd_automation {args} {
    record automation [lindex $args [expr {[lsearch -exact $args -rule] + 1}]] \
        [lindex $args [expr {[lsearch -exact $args -config] + 1}]] [lindex $args end]
}
proc get_bd_cells {name} { ip_of $name; return $name }
proc get_bd_pins {path} { return [check_pin $path pin] }
proc get_bd_intf_pins {path} { return [check_pin $path intf] }
proc connect_bd_net {source args} {
    foreach sink $args { record net $source $sink }
}
proc connect_bd_intf_net {source sink} { record intf $source $sink }
proc get_bd_addr_spaces {path} {
    lassign [split $path /] cell space
    if {[lsearch -exact [dict get $::ip_spaces [ip_of $cell]] $space] < 0} { error "stub: $cell has no address space $space" }
    return $path
}
proc get_bd_addr_segs {path} {
    set cell [lindex [split $path /] 0]
    set segment [join [lrange [split $path /] 1 end] /]
    set ip [ip_of $cell]
    set known [expr {$ip eq "accelerator" ? {s_axi/reg0} : [dict get $::ip_segments $ip]}]
    if {[lsearch -exact $known $segment] < 0} { error "stub: $cell has no address segment $segment" }
    return $path
}
proc assign_bd_address {args} {
    set offset [lindex $args [expr {[lsearch -exact $args -offset] + 1}]]
    set range [lindex $args [expr {[lsearch -exact $args -range] + 1}]]
    set space [lindex $args [expr {[lsearch -exact $args -target_address_space] + 1}]]
    record address $space [lindex $args end-1] [format 0x%08X $offset] [format 0x%X $range]
}
proc validate_bd_design {} { record validate }
proc save_bd_design {} { record save }

# --- runs ---
proc get_runs {name} { return $name }
proc launch_runs {run args} { record launch $run [lindex $args [expr {[lsearch -exact $args -to_step] + 1}]] }
proc wait_on_run {run} {
    # Stand-ins for Vivado's outputs, so the copy steps have files to copy.
    set dir [file join $::stub_project_dir runs impl_1]
    file mkdir $dir
    set f [open [file join $dir ${::bd}_wrapper.bit] w]; puts $f "stub bitstream"; close $f
    set handoff [file join $::stub_project_dir x.gen sources_1 bd $::bd hw_handoff]
    file mkdir $handoff
    set f [open [file join $handoff ${::bd}.hwh] w]; puts $f "stub handoff"; close $f
    record wait $run
}
proc open_run {run} { record open_run $run }
proc report_timing_summary {args} { record report timing }
proc report_utilization {args} { record report utilization }

rename unknown _original_unknown
proc unknown {args} { error "stub: Vivado command not modelled: [lindex $args 0]" }
