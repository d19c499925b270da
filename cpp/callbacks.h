// Routing of the engine's process-global log and progress callbacks to the Python caller.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "module.h"

namespace sdcpp {

// What one engine call on this thread reports to. The engine invokes its callbacks on the thread
// that made the call, so a thread-local scope keeps two Generators in two threads apart, and the
// end of the scope (on every exit path) is what unregisters the call's progress callback.
// Construct and destroy it with the GIL held; the engine call itself runs without it.
class CallScope {
public:
    explicit CallScope(py::object progress = py::none());
    ~CallScope();
    CallScope(const CallScope&)            = delete;
    CallScope& operator=(const CallScope&) = delete;

    static CallScope* current();

    void report_progress(int step, int steps, float seconds);
    void note_problem(std::string line);

    // Re-raises the first exception the progress callback raised, if any (GIL held).
    void rethrow_callback_error();
    // The engine's warnings and errors during this call, one per line, for exception messages.
    std::string problems() const;

private:
    py::object progress_;
    std::optional<py::error_already_set> callback_error_;
    std::vector<std::string> problems_;
    CallScope* previous_;
};

// Tells the log callback the lowest level the `sdcpp` logger would emit, so that lines below it
// never take the GIL.
void set_log_level(int python_level);

}  // namespace sdcpp
