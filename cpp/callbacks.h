// Routing of the engine's log, progress and preview callbacks to the Python caller.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "module.h"
#include "stable-diffusion.h"

namespace sdcpp {

// What one engine call on this thread reports to. The engine invokes its callbacks on the thread
// that made the call, so a thread-local scope keeps two Generators in two threads apart, and the
// end of the scope (on every exit path) is what unregisters the call's callbacks.
// Construct and destroy it with the GIL held; the engine call itself runs without it.
//
// At each progress report the scope also checks for Ctrl-C. When the progress callback raises, or
// Ctrl-C arrives, the exception is kept for rethrow_callback_error() and `stop` is called once so
// that the engine gives up at its next cancellation point. `cancelled` says whether
// Generator.cancel() applies to this call; while the call is being stopped either way, the
// engine's warnings and errors about giving up are logged at DEBUG: they are not failures.
class CallScope {
public:
    CallScope(py::object progress, py::object logger, std::function<void()> stop = nullptr,
              std::function<bool()> cancelled = nullptr, py::object preview = py::none());
    ~CallScope();
    CallScope(const CallScope&)            = delete;
    CallScope& operator=(const CallScope&) = delete;

    static CallScope* current();

    void report_progress(int step, int steps, float seconds);
    // Hands `preview(step, pixels)` a copy of the engine's (height, width, 3) preview image.
    void report_preview(int step, const sd_image_t& image);
    void note_problem(std::string line);
    const py::object& logger() const { return logger_; }
    bool stopping() const;

    bool has_callback_error() const { return callback_error_.has_value(); }
    // Re-raises the first exception of the progress callback or Ctrl-C, if any (GIL held).
    void rethrow_callback_error();
    // The engine's warnings and errors during this call, one per line, for exception messages.
    std::string problems() const;

private:
    // Runs `call` with the GIL held; its exception (or Ctrl-C) is kept and stops the engine call.
    template <typename F>
    void call_python(F&& call);

    py::object progress_;
    py::object preview_;
    py::object logger_;
    std::function<void()> stop_;
    std::function<bool()> cancelled_;
    std::atomic<bool> stopped_{false};
    std::optional<py::error_already_set> callback_error_;
    mutable std::mutex problems_mutex_;  // the engine's worker threads log concurrently
    std::vector<std::string> problems_;
    CallScope* previous_;
};

// While it lives, log lines from engine threads that Python never ran on (the model loader's
// workers) go to `scope`, as if logged on the thread that made the call. Only model loading
// starts such threads, and contexts are created one at a time (context.cpp), so one scope at a
// time is enough. Create and destroy it around the engine call, with the GIL released.
class WorkerThreadsReportTo {
public:
    explicit WorkerThreadsReportTo(CallScope& scope);
    ~WorkerThreadsReportTo();
    WorkerThreadsReportTo(const WorkerThreadsReportTo&)            = delete;
    WorkerThreadsReportTo& operator=(const WorkerThreadsReportTo&) = delete;
};

// While it lives, the engine previews generations on this thread every `every` steps in `mode`
// (a preview_t name) to CallScope::current()'s preview callback. The engine's preview settings are
// per thread (0040-preview-per-thread-interval.patch), so a generation in another thread neither
// receives these previews nor changes them; the destructor turns them off on every exit path.
class PreviewScope {
public:
    PreviewScope(bool enabled, const std::string& mode, int every);
    ~PreviewScope();
    PreviewScope(const PreviewScope&)            = delete;
    PreviewScope& operator=(const PreviewScope&) = delete;
};

// Tells the log callback the lowest level the `sdcpp` logger would emit, so that lines below it
// never take the GIL.
void set_log_level(int python_level);

}  // namespace sdcpp
