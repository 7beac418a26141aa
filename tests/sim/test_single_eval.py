"""When the native harness may skip the low-phase evaluation (sim/verilator.single_eval_allowed)."""

from accelkit.sim.verilator import single_eval_allowed

HEADER = "struct Vtop___024root {\n    CData/*0:0*/ __Vtrigprevexpr___TOP__clk__0;\n};\n"


def _model(tmp_path, ico_body, header=HEADER):
    (tmp_path / "Vtop___024root.h").write_text(header)
    (tmp_path / "Vtop___024root__0.cpp").write_text(
        "\nvoid Vtop___024root___ico_sequent__TOP__0(Vtop___024root* vlSelf) {\n" + ico_body + "\n}\n"
        "\nvoid Vtop___024root___nba_sequent__TOP__0(Vtop___024root* vlSelf) {\n"
        "    vlSelfRef.m_axis_tvalid = vlSelfRef.core__DOT__out_valid;\n}\n")
    return tmp_path


def test_allowed_when_only_the_axi_lite_handshakes_depend_on_inputs(tmp_path):
    body = "    vlSelfRef.s_axi_awready = (vlSelfRef.s_axi_awvalid & vlSelfRef.s_axi_wvalid);"
    assert single_eval_allowed(_model(tmp_path, body))


def test_refused_when_a_sampled_output_depends_on_an_input(tmp_path):
    body = "    vlSelfRef.s_axis_tready \n        = (1U & (~ (IData)(vlSelfRef.s_axis_tvalid)));"
    assert not single_eval_allowed(_model(tmp_path, body))
    body = "    vlSelfRef.m_axis_tdata[1U] = vlSelfRef.s_axis_tdata[1U];"
    assert not single_eval_allowed(_model(tmp_path, body))


def test_refused_when_the_model_is_not_recognized(tmp_path):
    assert not single_eval_allowed(_model(tmp_path, "    ;", header="struct Vtop___024root {};\n"))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not single_eval_allowed(empty)


def test_refused_for_older_generated_code_that_writes_through_vlself(tmp_path):
    # Verilator 5.0x spelt member accesses vlSelf->x; the guard must not depend on the spelling.
    body = "    vlSelf->s_axis_tready = (1U & (~ (IData)(vlSelf->s_axis_tvalid)));"
    assert not single_eval_allowed(_model(tmp_path, body))
    body = "    VL_ASSIGN_W(64, vlSymsp->TOP.m_axis_tdata, vlSelf->s_axis_tdata);"
    assert not single_eval_allowed(_model(tmp_path, body))


def test_refused_when_an_ico_function_calls_one_that_writes_an_output(tmp_path):
    (tmp_path / "Vtop___024root.h").write_text(HEADER)
    (tmp_path / "Vtop___024root__0.cpp").write_text(
        "\nvoid Vtop___024root___ico_sequent__TOP__0(Vtop___024root* vlSelf) {\n"
        "    Vtop___024root___settle_helper(vlSelf);\n}\n"
        "\nvoid Vtop___024root___settle_helper(Vtop___024root* vlSelf) {\n"
        "    vlSelf->irq = vlSelf->m_axis_tready;\n}\n")
    assert not single_eval_allowed(tmp_path)


def test_reading_an_output_or_comparing_it_is_not_a_write(tmp_path):
    body = ("    vlSelfRef.x = (vlSelfRef.s_axis_tready == 1U) & (IData)(vlSelfRef.irq);\n"
            "    if (vlSelfRef.m_axis_tvalid != 0U) { vlSelfRef.y = 1U; }")
    assert single_eval_allowed(_model(tmp_path, body))
