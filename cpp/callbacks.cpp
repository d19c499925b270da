#include "callbacks.h"

#include <pybind11/numpy.h>

#include <atomic>
#include <cstring>

#include "stable-diffusion.h"

namespace sdcpp {

namespace {

thread_local CallScope* current_scope = nullptr;
std::atomic<CallScope*> worker_scope{nullptr};  // see WorkerThreadsReportTo
std::atomic<int> min_python_level{30};
// Cleared at interpreter exit: the engine may still log from destructors after Python is gone.
std::atomic<bool> python_alive{true};

int python_level(sd_log_level_t level) {
    switch (level) {
        case SD_LOG_DEBUG: return 10;
        case SD_LOG_INFO: return 20;
        case SD_LOG_WARN: return 30;
        default: return 40;
    }
}

// The call a log line of this thread belongs to: the one running on it, or for an engine worker
// thread (one that never ran Python) the call that started the workers.
CallScope* scope_of_this_thread() {
    if (current_scope || !python_alive.load() || !Py_IsInitialized()) {
        return current_scope;
    }
    return PyGILState_GetThisThreadState() == nullptr ? worker_scope.load() : nullptr;
}

void on_log(sd_log_level_t level, const char* text, void*) {
    std::string line = text ? text : "";
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
        line.pop_back();
    }
    CallScope* scope = scope_of_this_thread();
    if (scope && level >= SD_LOG_WARN && scope->stopping()) {
        level = SD_LOG_DEBUG;  // "sampling failed" and the like, after a cancel: expected, not a failure
    }
    if (level >= SD_LOG_WARN && scope) {
        scope->note_problem(line);
    }
    const int py_level = python_level(level);
    if (py_level < min_python_level.load(std::memory_order_relaxed) || !python_alive.load() ||
        !Py_IsInitialized()) {
        return;
    }
    py::gil_scoped_acquire gil;
    try {
        // A Generator's own logger (a child of "sdcpp") for lines of its calls, "sdcpp" for the rest.
        py::object logger = scope ? scope->logger() : py::none();
        py::module_::import("sdcpp._logs").attr("emit")(py_level, line, logger);
    } catch (py::error_already_set& e) {
        // Python handles a Ctrl-C that arrived during the engine call in the first Python code the
        // main thread runs, which may be this handler: re-arm it for the next check instead of
        // losing it with the handler's error.
        if (e.matches(PyExc_KeyboardInterrupt)) {
            PyErr_SetInterrupt();
        } else {
            e.discard_as_unraisable("sdcpp log handler");
        }
    }
}

void on_progress(int step, int steps, float seconds, void*) {
    if (current_scope && python_alive.load()) {
        current_scope->report_progress(step, steps, seconds);
    }
}

void on_preview(int step, int frame_count, sd_image_t* frames, bool, void*) {
    if (current_scope && python_alive.load() && frame_count > 0 && frames && frames[0].data) {
        current_scope->report_preview(step < 0 ? -step : step, frames[0]);
    }
}

}  // namespace

CallScope::CallScope(py::object progress, py::object logger, std::function<void()> stop,
                     std::function<bool()> cancelled, py::object preview)
    : progress_(std::move(progress)),
      preview_(std::move(preview)),
      logger_(std::move(logger)),
      stop_(std::move(stop)),
      cancelled_(std::move(cancelled)),
      previous_(current_scope) {
    current_scope = this;
}

CallScope::~CallScope() {
    current_scope = previous_;
}

CallScope* CallScope::current() {
    return current_scope;
}

template <typename F>
void CallScope::call_python(F&& call) {
    if (callback_error_) {
        return;
    }
    py::gil_scoped_acquire gil;
    try {
        call();
    } catch (py::error_already_set& e) {
        callback_error_.emplace(std::move(e));
        stopped_.store(true);
        if (stop_) {
            stop_();
        }
    }
}

void CallScope::report_progress(int step, int steps, float seconds) {
    call_python([&] {
        // Python's SIGINT handler only sets a flag while native code runs; this raises it.
        if (PyErr_CheckSignals() != 0) {
            throw py::error_already_set();
        }
        if (!progress_.is_none()) {
            progress_(step, steps, seconds);
        }
    });
}

void CallScope::report_preview(int step, const sd_image_t& image) {
    if (preview_.is_none()) {
        return;
    }
    call_python([&] {
        // A copy: the engine frees its buffer when the callback returns.
        py::array_t<uint8_t> pixels({static_cast<py::ssize_t>(image.height), static_cast<py::ssize_t>(image.width),
                                     static_cast<py::ssize_t>(image.channel)});
        std::memcpy(pixels.mutable_data(), image.data, static_cast<size_t>(pixels.size()));
        preview_(step, pixels);
    });
}

bool CallScope::stopping() const {
    return stopped_.load() || (cancelled_ && cancelled_());
}

void CallScope::note_problem(std::string line) {
    std::lock_guard<std::mutex> lock(problems_mutex_);
    problems_.push_back(std::move(line));
}

void CallScope::rethrow_callback_error() {
    if (callback_error_) {
        py::error_already_set e = std::move(*callback_error_);
        callback_error_.reset();
        throw e;
    }
}

std::string CallScope::problems() const {
    std::lock_guard<std::mutex> lock(problems_mutex_);
    std::string out;
    for (const auto& line : problems_) {
        out += (out.empty() ? "" : "\n") + line;
    }
    return out;
}

WorkerThreadsReportTo::WorkerThreadsReportTo(CallScope& scope) {
    worker_scope.store(&scope);
}

WorkerThreadsReportTo::~WorkerThreadsReportTo() {
    worker_scope.store(nullptr);
}

PreviewScope::PreviewScope(bool enabled, const std::string& mode, int every) {
    if (enabled) {
        sd_set_preview_callback(on_preview, str_to_preview(mode.c_str()), every, true, false, nullptr);
    }
}

PreviewScope::~PreviewScope() {
    sd_set_preview_callback(nullptr, PREVIEW_NONE, 1, true, false, nullptr);
}

void set_log_level(int python_level) {
    min_python_level.store(python_level);
}

void register_callbacks(py::module_& m) {
    sd_set_log_callback(on_log, nullptr);
    sd_set_progress_callback(on_progress, nullptr);
    m.def("set_log_level", &set_log_level, py::arg("python_level"),
          "Lowest `logging` level forwarded from the engine to the `sdcpp` logger.");
    m.def(
        "shutdown", [] { python_alive.store(false); },
        "Stops forwarding engine callbacks to Python (called at interpreter exit).");
}

}  // namespace sdcpp
