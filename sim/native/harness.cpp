// Native harness: a verilated accelkit shell, its AXI4-Lite master and its two DMA
// channels, all clocked in C++. Python (ctypes) calls in once per transaction.
//
// The DMA timing rules are the ones stated in accelkit/driver/device.py and
// implemented for the Python simulators in accelkit/sim/streams.py; keep them equal,
// the cross-backend tests compare cycle counts exactly.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "Vtop.h"
#include "Vtop___024root.h"
#include "verilated.h"
#if AK_TRACE_FST
#include "verilated_fst_c.h"
typedef VerilatedFstC TraceFile;
#elif AK_TRACE_VCD
#include "verilated_vcd_c.h"
typedef VerilatedVcdC TraceFile;
#endif

namespace {

// One model evaluation per clock cycle instead of two (low, then high). A
// verilated model only sees a rising edge if its last evaluation had clk low;
// forgetting the sampled clock level gives the same edge without evaluating the
// low phase, which only settles logic that depends combinationally on the
// inputs. The harness then reads the stream handshakes before the edge as the
// previous edge left them, so build_native allows this only when no output the
// harness samples in cycle() depends combinationally on an input (see
// sim/verilator.py). Returns false when the model has no such member.
template <typename Root>
auto forget_clock(Root* root, int) -> decltype(root->__Vtrigprevexpr___TOP__clk__0 = 0, bool()) {
    root->__Vtrigprevexpr___TOP__clk__0 = 0;
    return true;
}
template <typename Root>
bool forget_clock(Root*, long) { return false; }

template <typename T>
void put_bytes(T& signal, const uint8_t* bytes, int count) {
    if constexpr (std::is_integral_v<T>) {
        uint64_t value = 0;
        std::memcpy(&value, bytes, std::min<int>(count, 8));
        signal = static_cast<T>(value);
    } else {
        const int words = sizeof(signal) / sizeof(signal[0]);
        for (int w = 0; w < words; ++w) {
            uint32_t value = 0;
            const int offset = w * 4;
            if (offset < count) std::memcpy(&value, bytes + offset, std::min(4, count - offset));
            signal[w] = value;
        }
    }
}

template <typename T>
void get_bytes(const T& signal, uint8_t* bytes, int count) {
    if constexpr (std::is_integral_v<T>) {
        uint64_t value = signal;
        std::memcpy(bytes, &value, std::min<int>(count, 8));
    } else {
        for (int offset = 0; offset < count; offset += 4) {
            uint32_t value = signal[offset / 4];
            std::memcpy(bytes + offset, &value, std::min(4, count - offset));
        }
    }
}

struct Receive {
    uint8_t* data;
    size_t size;
};

struct Harness {
    std::unique_ptr<VerilatedContext> context;
    std::unique_ptr<Vtop> top;
#if AK_TRACE_FST || AK_TRACE_VCD
    std::unique_ptr<TraceFile> trace;
#endif
    uint64_t time = 0;
    uint64_t total_cycles = 0;
    int beat_bytes;
    uint32_t ctrl_address;
    int bytes_per_cycle = 8;
    int latency = 0;
    bool single_eval = false;      // see forget_clock
    // DMA state, reset after every finished, timed-out or aborted job.
    std::vector<uint8_t> send;
    std::vector<char> send_last;   // per beat: ends a transfer (TLAST)
    std::vector<Receive> receives;
    size_t send_beats = 0, receive_beats = 0;
    size_t sent = 0, received = 0;
    bool armed = false;
    uint64_t dma_cycle = 0;
    // First DMA cycle of the next beat of each channel, latency + floor(n * beat_bytes /
    // bytes_per_cycle) for beat n, kept up to date without dividing (step: quotient and
    // remainder of beat_bytes / bytes_per_cycle).
    uint64_t send_at = 0, receive_at = 0;
    int send_rest = 0, receive_rest = 0;
    uint64_t step = 1;
    int step_rest = 0;

    void set_dma(int bytes, int cycles) {
        bytes_per_cycle = bytes;
        latency = cycles;
        step = uint64_t(beat_bytes / bytes_per_cycle);
        step_rest = beat_bytes % bytes_per_cycle;
        rewind();
    }

    void rewind() {   // from the beat counts, dividing once
        send_at = uint64_t(latency) + sent * beat_bytes / bytes_per_cycle;
        send_rest = int(sent * beat_bytes % bytes_per_cycle);
        receive_at = received * beat_bytes / bytes_per_cycle;
        receive_rest = int(received * beat_bytes % bytes_per_cycle);
    }

    void advance(uint64_t& at, int& rest) {
        at += step;
        rest += step_rest;
        if (rest >= bytes_per_cycle) {
            rest -= bytes_per_cycle;
            ++at;
        }
    }

    void dump() {
#if AK_TRACE_FST || AK_TRACE_VCD
        if (trace) trace->dump(time);
#endif
        ++time;
    }

    void store(size_t beat) {
        size_t offset = beat * beat_bytes;
        for (auto& r : receives) {
            if (offset < r.size) {
                get_bytes(top->m_axis_tdata, r.data + offset, beat_bytes);
                return;
            }
            offset -= r.size;
        }
    }

    // One clock cycle with the DMA channels serviced; returns interrupt as seen before the edge.
    bool cycle() {
        const bool send_valid = armed && sent < send_beats && dma_cycle >= send_at;
        const bool receive_ready = armed && received < receive_beats && dma_cycle >= receive_at;
        top->s_axis_tvalid = send_valid;
        if (send_valid) {
            put_bytes(top->s_axis_tdata, send.data() + sent * beat_bytes, beat_bytes);
            top->s_axis_tlast = send_last[sent];
        } else {
            top->s_axis_tlast = 0;
        }
        top->m_axis_tready = receive_ready;
        top->clk = 0;
        if (!single_eval) top->eval();
        dump();
        const bool send_fire = send_valid && top->s_axis_tready;
        const bool receive_fire = receive_ready && top->m_axis_tvalid;
        if (receive_fire) store(received);
        const bool ctrl_write = top->s_axi_awvalid && top->s_axi_awready && top->s_axi_awaddr == ctrl_address;
        const bool arm = ctrl_write && (top->s_axi_wdata & 1);
        const bool abort = ctrl_write && (top->s_axi_wdata & 2);
        const bool interrupt = top->irq;
        top->clk = 1;
        if (single_eval) forget_clock(top->rootp, 0);
        top->eval();
        dump();
        if (send_fire) {
            ++sent;
            advance(send_at, send_rest);
        }
        if (receive_fire) {
            ++received;
            advance(receive_at, receive_rest);
        }
        if (armed) ++dma_cycle;
        if (abort) {
            finish_job();   // the abort resets the DMA channels with the core
        } else if (arm) {
            armed = true;
            dma_cycle = 0;
        }
        ++total_cycles;
        return interrupt;
    }

    void finish_job() {
        send.clear();
        send_last.clear();
        receives.clear();
        send_beats = receive_beats = sent = received = 0;
        armed = false;
        dma_cycle = 0;
        rewind();
    }
};

}  // namespace

extern "C" {

// single_eval: the build found no sampled output that depends combinationally on an
// input (see forget_clock); ignored when tracing, which records both clock phases.
void* ak_open(const char* trace_path, int beat_bytes, uint32_t ctrl_address, int single_eval) {
    auto* h = new Harness();
    h->context = std::make_unique<VerilatedContext>();
    h->beat_bytes = beat_bytes;
    h->ctrl_address = ctrl_address;
    h->set_dma(h->bytes_per_cycle, h->latency);
#if AK_TRACE_FST || AK_TRACE_VCD
    if (trace_path && trace_path[0]) h->context->traceEverOn(true);
#endif
    h->top = std::make_unique<Vtop>(h->context.get(), "top");
#if AK_TRACE_FST || AK_TRACE_VCD
    if (trace_path && trace_path[0]) {
        h->trace = std::make_unique<TraceFile>();
        h->top->trace(h->trace.get(), 99);
        h->trace->open(trace_path);
    }
#endif
    h->top->s_axi_bready = 1;
    h->top->s_axi_rready = 1;
    h->top->rst = 1;
    for (int i = 0; i < 2; ++i) h->cycle();
    h->top->rst = 0;
    h->total_cycles = 0;
    h->single_eval = single_eval && !(trace_path && trace_path[0]) && forget_clock(h->top->rootp, 0);
    return h;
}

void ak_close(void* handle) {
    auto* h = static_cast<Harness*>(handle);
#if AK_TRACE_FST || AK_TRACE_VCD
    if (h->trace) h->trace->close();
#endif
    h->top->final();
    delete h;
}

void ak_set_dma(void* handle, int bytes_per_cycle, int latency) {
    static_cast<Harness*>(handle)->set_dma(bytes_per_cycle, latency);
}

void ak_write(void* handle, uint32_t address, uint32_t data) {
    auto* h = static_cast<Harness*>(handle);
    h->top->s_axi_awaddr = address;
    h->top->s_axi_wdata = data;
    h->top->s_axi_wstrb = 0xF;
    h->top->s_axi_awvalid = 1;
    h->top->s_axi_wvalid = 1;
    for (;;) {
        h->top->clk = 0;
        h->top->eval();
        const bool accepted = h->top->s_axi_awready;
        h->cycle();
        if (accepted) break;
    }
    h->top->s_axi_awvalid = 0;
    h->top->s_axi_wvalid = 0;
    for (;;) {
        h->top->clk = 0;
        h->top->eval();
        const bool response = h->top->s_axi_bvalid;
        h->cycle();
        if (response) break;
    }
}

uint32_t ak_read(void* handle, uint32_t address) {
    auto* h = static_cast<Harness*>(handle);
    h->top->s_axi_araddr = address;
    h->top->s_axi_arvalid = 1;
    for (;;) {
        h->top->clk = 0;
        h->top->eval();
        const bool accepted = h->top->s_axi_arready;
        h->cycle();
        if (accepted) break;
    }
    h->top->s_axi_arvalid = 0;
    for (;;) {
        h->top->clk = 0;
        h->top->eval();
        const bool valid = h->top->s_axi_rvalid;
        const uint32_t value = h->top->s_axi_rdata;
        h->cycle();
        if (valid) return value;
    }
}

void ak_send(void* handle, const uint8_t* data, size_t size) {
    auto* h = static_cast<Harness*>(handle);
    h->send.insert(h->send.end(), data, data + size);
    h->send_beats = h->send.size() / h->beat_bytes;
    h->send_last.resize(h->send_beats, 0);
    if (!h->send_last.empty()) h->send_last.back() = 1;
}

void ak_receive(void* handle, uint8_t* data, size_t size) {
    auto* h = static_cast<Harness*>(handle);
    h->receives.push_back({data, size});
    h->receive_beats += size / h->beat_bytes;
}

// Clock until interrupt; returns the cycles run, or -1 when the budget ran out. Either
// way the DMA channels are emptied: a timed-out job's data must not feed the next job.
int64_t ak_run(void* handle, uint64_t budget) {
    auto* h = static_cast<Harness*>(handle);
    for (uint64_t n = 0; n < budget; ++n) {
        if (h->cycle()) {
            h->finish_job();
            return int64_t(n);
        }
    }
    h->finish_job();
    return -1;
}

uint64_t ak_total_cycles(void* handle) { return static_cast<Harness*>(handle)->total_cycles; }

// Bare loop for the harness-overhead benchmark: clocks the model with nothing else.
void ak_clock_only(void* handle, uint64_t cycles) {
    auto* h = static_cast<Harness*>(handle);
    for (uint64_t n = 0; n < cycles; ++n) {
        h->top->clk = 0;
        if (!h->single_eval) h->top->eval();
        h->top->clk = 1;
        if (h->single_eval) forget_clock(h->top->rootp, 0);
        h->top->eval();
    }
}

}  // extern "C"
