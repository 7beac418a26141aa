# Vivado build of accelkit_gemm for kv260, written by accelkit.
# Run: vivado -mode batch -source build.tcl   (or ./build.sh)
# Not run in Vivado by accelkit's own tests (they check it under tclsh with stub commands).

set script_dir [file dirname [file normalize [info script]]]
set top accelkit_gemm
set bd accelkit_bd
set part xck26-sfvc784-2LV-c
set board_part xilinx.com:kv260_som:part0:1.4
set clock_mhz 100
set build_dir [file join $script_dir build]
set jobs [expr {[info exists ::env(ACCELKIT_JOBS)] ? $::env(ACCELKIT_JOBS) : 4}]

# The newest version of a Xilinx IP this Vivado has (the IP versions differ between releases).
proc latest_ip {name} {
    set found [lsort -dictionary [get_ipdefs -all xilinx.com:ip:${name}:*]]
    if {[llength $found] == 0} { error "accelkit: this Vivado has no IP xilinx.com:ip:${name}" }
    return [lindex $found end]
}

# 1. Package the accelerator's Verilog top as an IP.
create_project -force ip_package [file join $build_dir ip_package] -part $part
add_files -norecurse [file join $script_dir ${top}.v]
set_property top $top [current_fileset]
ipx::package_project -root_dir [file join $build_dir ip] -vendor accelkit -library accelkit -taxonomy /UserIP -import_files -set_current true
set core [ipx::current_core]
set_property name $top $core
set_property version 1.0 $core
set_property display_name $top $core
ipx::infer_bus_interface clk xilinx.com:signal:clock_rtl:1.0 $core
ipx::infer_bus_interface rst xilinx.com:signal:reset_rtl:1.0 $core
ipx::infer_bus_interface irq xilinx.com:signal:interrupt_rtl:1.0 $core
set reset_polarity [ipx::add_bus_parameter POLARITY [ipx::get_bus_interfaces rst -of_objects $core]]
set_property value ACTIVE_HIGH $reset_polarity
set irq_sensitivity [ipx::add_bus_parameter SENSITIVITY [ipx::get_bus_interfaces irq -of_objects $core]]
set_property value LEVEL_HIGH $irq_sensitivity
ipx::associate_bus_interfaces -busif s_axi -clock clk $core
ipx::associate_bus_interfaces -busif s_axis -clock clk $core
ipx::associate_bus_interfaces -busif m_axis -clock clk $core
ipx::associate_bus_interfaces -clock clk -reset rst $core
# The register window the address map gives the accelerator.
set_property range 65536 [ipx::get_address_blocks reg0 -of_objects [ipx::get_memory_maps s_axi -of_objects $core]]
ipx::create_xgui_files $core
ipx::update_checksums $core
ipx::check_integrity $core
ipx::save_core $core
close_project

# 2. The block design.
create_project -force $top [file join $build_dir project] -part $part
set_property board_part $board_part [current_project]
set_property board_connections {som240_1_connector xilinx.com:kv260_carrier:som240_1_connector:1.3} [current_project]
set_property ip_repo_paths [file join $build_dir ip] [current_project]
update_ip_catalog
create_bd_design $bd
create_bd_cell -type ip -vlnv [latest_ip zynq_ultra_ps_e] zynq_ultra_ps_e_0
apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {apply_board_preset "1"} [get_bd_cells zynq_ultra_ps_e_0]
set_property -dict [list CONFIG.PSU__USE__M_AXI_GP0 {1} CONFIG.PSU__USE__M_AXI_GP1 {0} CONFIG.PSU__USE__M_AXI_GP2 {0} CONFIG.PSU__USE__S_AXI_GP2 {1} CONFIG.PSU__SAXIGP2__DATA_WIDTH {128} CONFIG.PSU__USE__IRQ0 {1} CONFIG.PSU__FPGA_PL0_ENABLE {1} CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ {100}] [get_bd_cells zynq_ultra_ps_e_0]
create_bd_cell -type ip -vlnv [latest_ip axi_dma] axi_dma_0
set_property -dict [list CONFIG.c_include_sg {0} CONFIG.c_sg_length_width {26} CONFIG.c_sg_include_stscntrl_strm {0} CONFIG.c_m_axi_mm2s_data_width {32} CONFIG.c_m_axis_mm2s_tdata_width {32} CONFIG.c_m_axi_s2mm_data_width {32} CONFIG.c_s_axis_s2mm_tdata_width {32} CONFIG.c_mm2s_burst_size {16} CONFIG.c_s2mm_burst_size {16}] [get_bd_cells axi_dma_0]
create_bd_cell -type ip -vlnv accelkit:accelkit:accelkit_gemm:1.0 accelerator_0
create_bd_cell -type ip -vlnv [latest_ip smartconnect] control_interconnect
set_property -dict [list CONFIG.NUM_SI {1} CONFIG.NUM_MI {2}] [get_bd_cells control_interconnect]
create_bd_cell -type ip -vlnv [latest_ip smartconnect] memory_interconnect
set_property -dict [list CONFIG.NUM_SI {2} CONFIG.NUM_MI {1}] [get_bd_cells memory_interconnect]
create_bd_cell -type ip -vlnv [latest_ip proc_sys_reset] reset_0
create_bd_cell -type ip -vlnv [latest_ip xlconcat] irq_concat
set_property -dict [list CONFIG.NUM_PORTS {3}] [get_bd_cells irq_concat]

connect_bd_intf_net [get_bd_intf_pins zynq_ultra_ps_e_0/M_AXI_HPM0_FPD] [get_bd_intf_pins control_interconnect/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins control_interconnect/M00_AXI] [get_bd_intf_pins axi_dma_0/S_AXI_LITE]
connect_bd_intf_net [get_bd_intf_pins control_interconnect/M01_AXI] [get_bd_intf_pins accelerator_0/s_axi]
connect_bd_intf_net [get_bd_intf_pins axi_dma_0/M_AXI_MM2S] [get_bd_intf_pins memory_interconnect/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins axi_dma_0/M_AXI_S2MM] [get_bd_intf_pins memory_interconnect/S01_AXI]
connect_bd_intf_net [get_bd_intf_pins memory_interconnect/M00_AXI] [get_bd_intf_pins zynq_ultra_ps_e_0/S_AXI_HP0_FPD]
connect_bd_intf_net [get_bd_intf_pins axi_dma_0/M_AXIS_MM2S] [get_bd_intf_pins accelerator_0/s_axis]
connect_bd_intf_net [get_bd_intf_pins accelerator_0/m_axis] [get_bd_intf_pins axi_dma_0/S_AXIS_S2MM]
connect_bd_net [get_bd_pins zynq_ultra_ps_e_0/pl_clk0] [get_bd_pins zynq_ultra_ps_e_0/maxihpm0_fpd_aclk] [get_bd_pins zynq_ultra_ps_e_0/saxihp0_fpd_aclk] [get_bd_pins axi_dma_0/s_axi_lite_aclk] [get_bd_pins axi_dma_0/m_axi_mm2s_aclk] [get_bd_pins axi_dma_0/m_axi_s2mm_aclk] [get_bd_pins control_interconnect/aclk] [get_bd_pins memory_interconnect/aclk] [get_bd_pins reset_0/slowest_sync_clk] [get_bd_pins accelerator_0/clk]
connect_bd_net [get_bd_pins zynq_ultra_ps_e_0/pl_resetn0] [get_bd_pins reset_0/ext_reset_in]
connect_bd_net [get_bd_pins reset_0/peripheral_aresetn] [get_bd_pins axi_dma_0/axi_resetn] [get_bd_pins control_interconnect/aresetn] [get_bd_pins memory_interconnect/aresetn]
connect_bd_net [get_bd_pins reset_0/peripheral_reset] [get_bd_pins accelerator_0/rst]
connect_bd_net [get_bd_pins axi_dma_0/mm2s_introut] [get_bd_pins irq_concat/In0]
connect_bd_net [get_bd_pins axi_dma_0/s2mm_introut] [get_bd_pins irq_concat/In1]
connect_bd_net [get_bd_pins accelerator_0/irq] [get_bd_pins irq_concat/In2]
connect_bd_net [get_bd_pins irq_concat/dout] [get_bd_pins zynq_ultra_ps_e_0/pl_ps_irq0]

assign_bd_address -offset 0xA0000000 -range 0x00010000 -target_address_space [get_bd_addr_spaces zynq_ultra_ps_e_0/Data] [get_bd_addr_segs axi_dma_0/S_AXI_LITE/Reg] -force
assign_bd_address -offset 0xA0010000 -range 0x00010000 -target_address_space [get_bd_addr_spaces zynq_ultra_ps_e_0/Data] [get_bd_addr_segs accelerator_0/s_axi/reg0] -force
assign_bd_address -offset 0x00000000 -range 0x80000000 -target_address_space [get_bd_addr_spaces axi_dma_0/Data_MM2S] [get_bd_addr_segs zynq_ultra_ps_e_0/S_AXI_HP0_FPD/HP0_DDR_LOW] -force
assign_bd_address -offset 0x00000000 -range 0x80000000 -target_address_space [get_bd_addr_spaces axi_dma_0/Data_S2MM] [get_bd_addr_segs zynq_ultra_ps_e_0/S_AXI_HP0_FPD/HP0_DDR_LOW] -force
validate_bd_design
save_bd_design

# 3. Synthesis and implementation to a bitstream.
set bd_file [get_files ${bd}.bd]
generate_target all $bd_file
add_files -norecurse [make_wrapper -files $bd_file -top]
set_property top ${bd}_wrapper [current_fileset]
launch_runs impl_1 -to_step write_bitstream -jobs $jobs
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} {
    error "accelkit: implementation did not finish; see [get_property DIRECTORY [get_runs impl_1]]"
}

# 4. Timing: the PS's clock constraint covers every path of the design.
set setup_slack [get_property STATS.WNS [get_runs impl_1]]
set hold_slack [get_property STATS.WHS [get_runs impl_1]]
open_run impl_1
report_timing_summary -file [file join $script_dir timing_summary.txt]
report_utilization -file [file join $script_dir utilization.txt]
puts "accelkit: fabric clock $clock_mhz MHz, worst setup slack $setup_slack ns, worst hold slack $hold_slack ns"
if {$setup_slack < 0 || $hold_slack < 0} {
    if {![info exists ::env(ACCELKIT_ALLOW_TIMING_FAILURE)]} {
        error "accelkit: timing not met at $clock_mhz MHz (setup $setup_slack ns, hold $hold_slack ns); \
re-export with a slower --clock-mhz, or set ACCELKIT_ALLOW_TIMING_FAILURE=1 to keep the bitstream"
    }
    puts "accelkit: WARNING: timing not met; the bitstream is kept because ACCELKIT_ALLOW_TIMING_FAILURE is set"
}

# 5. The bitstream and the hardware handoff, with the same base name (what pynq.Overlay expects).
set bit [glob -nocomplain [file join [get_property DIRECTORY [get_runs impl_1]] ${bd}_wrapper.bit]]
set hwh [glob -nocomplain [file join $build_dir project *.gen sources_1 bd $bd hw_handoff ${bd}.hwh] \
    [file join $build_dir project *.srcs sources_1 bd $bd hw_handoff ${bd}.hwh]]
if {[llength $bit] == 0 || [llength $hwh] == 0} { error "accelkit: no bitstream or hardware handoff was written" }
file copy -force [lindex $bit 0] [file join $script_dir ${top}.bit]
file copy -force [lindex $hwh 0] [file join $script_dir ${top}.hwh]
puts "accelkit: wrote [file join $script_dir ${top}.bit] and [file join $script_dir ${top}.hwh]"
