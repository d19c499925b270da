// What the binding's engine handles (Context, Upscaler) share around their engine calls: the lock
// for the process-global device choice, a mutex that refuses re-entry, name lookups, and errors
// that carry the engine's log.
#pragma once

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "callbacks.h"
#include "stable-diffusion.h"

namespace sdcpp {

// sd_set_backend_device is process-global: the device choice and the loading that reads it happen
// under this lock (and WorkerThreadsReportTo relies on one load at a time).
std::mutex& creation_mutex();

inline const char* c_str_or_null(const std::string& s) {
    return s.empty() ? nullptr : s.c_str();
}

// Runs `load` (which creates an engine handle) on the ggml device `device` ("" = the engine's
// default): with the GIL released, one load at a time, the loader's worker threads logging to
// `scope`. Returns what an exception thrown by the engine said, "" for none: the engine's readers
// throw on some malformed files (e.g. std::length_error on a GGUF string length beyond the file)
// although its API is C, and those are load failures.
template <typename Load>
std::string load_on_device(const std::string& device, CallScope& scope, Load load) {
    py::gil_scoped_release nogil;
    std::lock_guard<std::mutex> lock(creation_mutex());
    WorkerThreadsReportTo workers(scope);
    sd_set_backend_device(c_str_or_null(device));
    std::string engine_exception;
    try {
        load();
    } catch (const std::exception& e) {
        engine_exception = e.what();
    }
    sd_set_backend_device(nullptr);
    return engine_exception;
}

// `message`, followed by the engine's warnings and errors during the call.
std::string with_engine_log(std::string message, const CallScope& scope);

// 0021-named-device-no-fallback.patch logs "device '<name>' failed to start" when the device a
// load was asked for does not start; this throws DeviceError then.
void throw_device_failure(const std::string& device, const CallScope& scope);

// A mutex that knows which thread holds it. Progress callbacks and log handlers run on the thread
// of the engine call that invokes them, while that call holds its handle's locks: a call from
// there that needs the same lock would wait for itself forever, so it is refused instead.
class OwnedMutex {
public:
    void lock() {
        mutex_.lock();
        owner_.store(std::this_thread::get_id());
    }
    void unlock() {
        owner_.store(std::thread::id());
        mutex_.unlock();
    }
    bool held_by_this_thread() const { return owner_.load() == std::this_thread::get_id(); }
    // `owner` is the Python class whose call holds the lock; only a Generator can cancel its call.
    void refuse_reentry(const std::string& what, const std::string& owner = "Generator") const {
        if (held_by_this_thread()) {
            const std::string cancel =
                owner == "Generator" ? "Call Generator.cancel() there to stop the call, and " : "";
            throw std::runtime_error(what + " cannot be used from a progress callback or log handler of a call running "
                                            "on the same " + owner + ": it would wait forever for that call to end. " +
                                     cancel + (cancel.empty() ? "Use " : "use ") + what + " after it has returned.");
        }
    }

private:
    std::mutex mutex_;
    std::atomic<std::thread::id> owner_{};
};

// The engine's enum value named `name` (through its str_to_* helper); `unset` for "".
template <typename Enum>
Enum parse_name(const std::string& name, Enum (*from_name)(const char*), Enum unset, const char* what) {
    if (name.empty()) {
        return unset;
    }
    Enum value = from_name(name.c_str());
    if (value == unset) {
        throw py::value_error(std::string("unknown ") + what + " '" + name + "'");
    }
    return value;
}

}  // namespace sdcpp
