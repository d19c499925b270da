// An ESRGAN upscaler: the engine's upscaler_ctx_t, owned for its whole life by one Upscaler object.
#include "upscaler.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>

#include "callbacks.h"
#include "engine_call.h"
#include "errors.h"
#include "images.h"
#include "module.h"

namespace sdcpp {

void fill_hires_params(const std::optional<HiresFix>& hires, sd_hires_params_t* out) {
    sd_hires_params_init(out);
    if (!hires) {
        return;
    }
    out->enabled            = true;
    out->upscaler =
        parse_name(hires->upscaler, str_to_sd_hires_upscaler, SD_HIRES_UPSCALER_COUNT, "hires upscaler");
    out->model_path         = c_str_or_null(hires->model);
    out->scale              = hires->scale;
    out->target_width       = hires->width;
    out->target_height      = hires->height;
    out->steps              = hires->steps;
    out->denoising_strength = hires->denoising_strength;
    out->upscale_tile_size  = hires->tile_size;
}

class Upscaler {
public:
    Upscaler(const std::string& path, const std::string& device, int threads, int tile_size, py::object logger)
        : logger_(std::move(logger)) {
        CallScope scope(py::none(), logger_);
        std::string engine_exception = load_on_device(device, scope, [&] {
            ctx_.reset(new_upscaler_ctx(path.c_str(), false, false,
                                        threads > 0 ? threads : sd_get_num_physical_cores(), tile_size));
        });
        if (!engine_exception.empty()) {
            throw ModelLoadError(with_engine_log("the engine failed reading the upscaler: " + engine_exception, scope));
        }
        scope.rethrow_callback_error();
        // The engine's upscaler runs on the CPU when the named device fails to start; refuse that.
        throw_device_failure(device, scope);
        if (!ctx_) {
            throw ModelLoadError(with_engine_log("the engine could not load the ESRGAN model", scope));
        }
        factor_ = get_upscale_factor(ctx_.get());
    }

    ~Upscaler() {
        py::gil_scoped_release nogil;
        free_engine();
    }

    int factor() const { return factor_; }

    py::array_t<uint8_t> upscale(const Pixels& image) {
        CallScope scope(py::none(), logger_);
        call_mutex_.refuse_reentry("Upscaler.upscale()", "Upscaler");
        sd_image_t out{0, 0, 0, nullptr};
        std::string engine_exception;
        {
            py::gil_scoped_release nogil;
            std::lock_guard<OwnedMutex> lock(call_mutex_);
            if (!ctx_) {
                throw py::value_error("the Upscaler is closed");
            }
            try {
                // The engine ignores the factor and always upscales by its model's own.
                out = ::upscale(ctx_.get(), image_view(image), static_cast<uint32_t>(factor_));
            } catch (const std::exception& e) {
                engine_exception = e.what();
            }
        }
        // Owned from here, so that every exit below frees the engine's pixels.
        auto* owned = static_cast<sd_image_t*>(std::malloc(sizeof(sd_image_t)));
        if (!owned) {
            std::free(out.data);
            throw std::bad_alloc();
        }
        *owned = out;
        ImageBatch batch(owned, 1);
        if (!engine_exception.empty()) {
            throw GenerationError(with_engine_log("the engine failed: " + engine_exception, scope));
        }
        scope.rethrow_callback_error();  // Ctrl-C during the call
        if (!out.data) {
            throw GenerationError(with_engine_log("the engine could not upscale the image", scope));
        }
        return to_arrays(std::move(batch))[0].cast<py::array_t<uint8_t>>();
    }

    // Waits for an upscale running in another thread, then frees the model.
    void close() {
        call_mutex_.refuse_reentry("Upscaler.close()", "Upscaler");
        py::gil_scoped_release nogil;
        free_engine();
    }

    bool closed() const { return closed_.load(); }

private:
    void free_engine() {
        std::lock_guard<OwnedMutex> lock(call_mutex_);
        ctx_.reset();
        closed_.store(true);
    }

    py::object logger_;
    std::unique_ptr<upscaler_ctx_t, decltype(&free_upscaler_ctx)> ctx_{nullptr, free_upscaler_ctx};
    int factor_ = 0;
    OwnedMutex call_mutex_;  // one engine call at a time; close() waits for it
    std::atomic<bool> closed_{false};
};

void register_upscaler(py::module_& m) {
    py::class_<Upscaler>(m, "Upscaler", "An ESRGAN upscaler model loaded by the engine.")
        .def(py::init<const std::string&, const std::string&, int, int, py::object>(), py::arg("path"),
             py::kw_only(), py::arg("device") = "", py::arg("threads") = 0, py::arg("tile_size") = 128,
             py::arg("logger").none(true) = py::none(),
             R"pbdoc(
Loads an ESRGAN model. `device` is a ggml device name ("" = the engine's default); `threads` <= 0
means one per physical core; the model runs on tiles of `tile_size` pixels; engine log lines of
this upscaler's calls go to `logger` (default: the "sdcpp" logger).

Raises:
    sdcpp.ModelLoadError: the engine refused the file; the message carries its log.
    sdcpp.DeviceError: the named device failed to start.
)pbdoc")
        .def_property_readonly("factor", &Upscaler::factor, "How many times larger the model makes an image.")
        .def("upscale", &Upscaler::upscale, py::arg("image"),
             R"pbdoc(
Upscales (height, width, 3) uint8 pixels by `factor`; returns (height * factor, width * factor, 3)
uint8 pixels viewing the engine's memory. sdcpp.Upscaler checks the input.

Raises:
    RuntimeError: called from a log handler of a call on this upscaler.
    sdcpp.GenerationError: the engine failed; the message carries its log.
)pbdoc")
        .def("close", &Upscaler::close, "Frees the model; waits for an upscale in progress to finish.")
        .def_property_readonly("closed", &Upscaler::closed);
}

}  // namespace sdcpp
