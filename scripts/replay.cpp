// Replays the native harness calls recorded by scripts/sim_instructions.py against a built
// libaccelkit.so, so the simulation can run under `valgrind --tool=callgrind` without Python.
// Usage: replay LIBRARY LOG. Checks every ak_run's cycle count against the recording; prints
// "cycles N bare M" (cycles simulated by ak_write/ak_read/ak_run, and by ak_clock_only).
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {
template <typename F>
F load(void* lib, const char* name) {
    void* symbol = dlsym(lib, name);
    if (!symbol) {
        std::fprintf(stderr, "replay: %s has no symbol %s\n", "the library", name);
        std::exit(2);
    }
    return reinterpret_cast<F>(symbol);
}

std::vector<uint8_t> unhex(const std::string& text) {
    std::vector<uint8_t> out(text.size() / 2);
    for (size_t i = 0; i < out.size(); ++i) out[i] = uint8_t(std::stoul(text.substr(2 * i, 2), nullptr, 16));
    return out;
}
}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: replay LIBRARY LOG\n");
        return 2;
    }
    void* lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) {
        std::fprintf(stderr, "replay: cannot load %s: %s\n", argv[1], dlerror());
        return 2;
    }
    auto ak_open = load<void* (*)(const char*, int, uint32_t, int)>(lib, "ak_open");
    auto ak_close = load<void (*)(void*)>(lib, "ak_close");
    auto ak_set_dma = load<void (*)(void*, int, int)>(lib, "ak_set_dma");
    auto ak_write = load<void (*)(void*, uint32_t, uint32_t)>(lib, "ak_write");
    auto ak_read = load<uint32_t (*)(void*, uint32_t)>(lib, "ak_read");
    auto ak_send = load<void (*)(void*, const uint8_t*, size_t)>(lib, "ak_send");
    auto ak_receive = load<void (*)(void*, uint8_t*, size_t)>(lib, "ak_receive");
    auto ak_run = load<int64_t (*)(void*, uint64_t)>(lib, "ak_run");
    auto ak_total_cycles = load<uint64_t (*)(void*)>(lib, "ak_total_cycles");
    auto ak_clock_only = load<void (*)(void*, uint64_t)>(lib, "ak_clock_only");

    std::ifstream log(argv[2]);
    if (!log) {
        std::fprintf(stderr, "replay: cannot read %s\n", argv[2]);
        return 2;
    }
    void* h = nullptr;
    std::vector<std::vector<uint8_t>> buffers;   // receive buffers live until the end
    uint64_t bare = 0;
    std::string line;
    while (std::getline(log, line)) {
        std::istringstream in(line);
        std::string op;
        in >> op;
        if (op == "open") {
            int beat, single;
            uint32_t ctrl;
            in >> beat >> ctrl >> single;
            h = ak_open("", beat, ctrl, single);
        } else if (op == "set_dma") {
            int bytes, latency;
            in >> bytes >> latency;
            ak_set_dma(h, bytes, latency);
        } else if (op == "write") {
            uint32_t address, data;
            in >> address >> data;
            ak_write(h, address, data);
        } else if (op == "read") {
            uint32_t address;
            in >> address;
            ak_read(h, address);
        } else if (op == "send") {
            std::string hex;
            in >> hex;
            std::vector<uint8_t> data = unhex(hex);
            ak_send(h, data.data(), data.size());
        } else if (op == "receive") {
            size_t size;
            in >> size;
            buffers.emplace_back(size);
            ak_receive(h, buffers.back().data(), size);
        } else if (op == "run") {
            uint64_t budget;
            int64_t expected;
            in >> budget >> expected;
            const int64_t got = ak_run(h, budget);
            if (got != expected) {
                std::fprintf(stderr, "replay: a job ran %lld cycles, the recording says %lld\n", (long long)got,
                             (long long)expected);
                return 1;
            }
        } else if (op == "clock_only") {
            uint64_t cycles;
            in >> cycles;
            ak_clock_only(h, cycles);
            bare += cycles;
        }
    }
    std::printf("cycles %llu bare %llu\n", (unsigned long long)ak_total_cycles(h), (unsigned long long)bare);
    ak_close(h);
    return 0;
}
