// Per-node timings of the engine's graphs (engine patch 0011): while a profile is recording, every
// graph runs one node at a time and each node's shape, types and time are kept here.
#include <pybind11/stl.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "ggml.h"
#include "module.h"
#include "stable-diffusion.h"

namespace sdcpp {

namespace {

struct Operand {
    std::string type;
    std::vector<int64_t> shape;  // ggml order: ne[0] is the innermost (contiguous) dimension
};

struct OpRecord {
    std::string runner, op, name;
    Operand out;
    std::vector<Operand> srcs;
    int64_t us;
    size_t bytes;  // read and written: the output and every source, whole
};

Operand operand(const ggml_tensor* t) {
    return {ggml_type_name(t->type), {t->ne[0], t->ne[1], t->ne[2], t->ne[3]}};
}

// Engine threads append while the GIL is released, so the records need their own lock.
std::mutex records_mutex;
std::vector<OpRecord> records;

void record(const char* runner, const ggml_tensor* node, int64_t us, void*) {
    OpRecord r{runner, ggml_op_desc(node), node->name, operand(node), {}, us, ggml_nbytes(node)};
    for (const ggml_tensor* src : node->src) {
        if (src) {
            r.srcs.push_back(operand(src));
            r.bytes += ggml_nbytes(src);
        }
    }
    std::lock_guard<std::mutex> lock(records_mutex);
    records.push_back(std::move(r));
}

py::dict to_dict(const Operand& o) {
    py::dict d;
    d["type"]  = o.type;
    d["shape"] = py::tuple(py::cast(o.shape));
    return d;
}

}  // namespace

void register_profile(py::module_& m) {
    m.def(
        "start_op_profile",
        [] {
            std::lock_guard<std::mutex> lock(records_mutex);
            records.clear();
            sd_set_op_profiler(record, nullptr);
        },
        "Run every graph node by node and record each node's time, until stop_op_profile().");
    m.def(
        "stop_op_profile",
        [] {
            sd_set_op_profiler(nullptr, nullptr);
            std::vector<OpRecord> taken;
            {
                std::lock_guard<std::mutex> lock(records_mutex);
                taken.swap(records);
            }
            py::list out;
            for (const OpRecord& r : taken) {
                py::dict d;
                d["runner"] = r.runner;
                d["op"]     = r.op;
                d["name"]   = r.name;
                d["out"]    = to_dict(r.out);
                py::list srcs;
                for (const Operand& s : r.srcs) {
                    srcs.append(to_dict(s));
                }
                d["srcs"]  = srcs;
                d["us"]    = r.us;
                d["bytes"] = r.bytes;
                out.append(d);
            }
            return out;
        },
        "Stop recording and return the records: one dict per node run since start_op_profile().");
}

}  // namespace sdcpp
