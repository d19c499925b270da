// A loaded model: the engine context, owned for its whole life by one Context object.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "callbacks.h"
#include "engine_call.h"
#include "errors.h"
#include "images.h"
#include "module.h"
#include "params.h"
#include "stable-diffusion.h"
#include "stages.h"
#include "upscaler.h"

namespace sdcpp {

namespace {

// 0004-check-ops-before-compute.patch logs "unsupported op '<op>' on <backend>" when a graph holds
// a node its backend cannot run; that failure has its own exception, with the way out.
void throw_unsupported_op(const CallScope& scope) {
    const std::string problems = scope.problems();
    const std::string marker   = "unsupported op '";
    auto at                    = problems.find(marker);
    if (at == std::string::npos) {
        return;
    }
    auto op_begin = at + marker.size();
    auto op_end   = problems.find("' on ", op_begin);
    auto dev_end  = problems.find('\n', op_end);
    std::string op     = problems.substr(op_begin, op_end - op_begin);
    std::string device = problems.substr(op_end + 5, dev_end == std::string::npos ? std::string::npos : dev_end - op_end - 5);
    throw UnsupportedOperation(op + "|" + device);
}

// The component files a context reads, by the Generator argument that names each, and the field of
// sd_ctx_params_t each fills. A component the engine gains is one row here and one in sdcpp.components.
const std::pair<const char*, const char* sd_ctx_params_t::*> component_fields[] = {
    {"model", &sd_ctx_params_t::model_path},
    {"diffusion_model", &sd_ctx_params_t::diffusion_model_path},
    {"high_noise_diffusion_model", &sd_ctx_params_t::high_noise_diffusion_model_path},
    {"vae", &sd_ctx_params_t::vae_path},
    {"taesd", &sd_ctx_params_t::taesd_path},
    {"clip_l", &sd_ctx_params_t::clip_l_path},
    {"clip_g", &sd_ctx_params_t::clip_g_path},
    {"clip_vision", &sd_ctx_params_t::clip_vision_path},
    {"t5xxl", &sd_ctx_params_t::t5xxl_path},
    {"llm", &sd_ctx_params_t::llm_path},
    {"llm_vision", &sd_ctx_params_t::llm_vision_path},
    {"control_net", &sd_ctx_params_t::control_net_path},
    {"photo_maker", &sd_ctx_params_t::photo_maker_path},
};

// The settings image and video generation share, from `o` into the engine's call `p` (an
// sd_img_gen_params_t or sd_vid_gen_params_t). The caller keeps `loras` and `skip_layers` alive.
template <typename EngineParams>
void fill_shared(const GenerationParams& o, EngineParams& p, std::vector<sd_lora_t>& loras, std::vector<int>& skip_layers) {
    p.prompt                                    = o.prompt.c_str();
    p.negative_prompt                           = o.negative_prompt.c_str();
    p.width                                     = o.width;
    p.height                                    = o.height;
    p.seed                                      = o.seed;
    p.clip_skip                                 = o.clip_skip;
    p.strength                                  = o.strength;
    p.sample_params.sample_steps                = o.steps;
    p.sample_params.guidance.txt_cfg            = o.cfg_scale;
    p.sample_params.guidance.distilled_guidance = o.guidance;
    p.sample_params.flow_shift                  = o.flow_shift;
    p.sample_params.sample_method = parse_name(o.sampler, str_to_sample_method, SAMPLE_METHOD_COUNT, "sampler");
    p.sample_params.scheduler     = parse_name(o.scheduler, str_to_scheduler, SCHEDULER_COUNT, "scheduler");
    for (const auto& [path, weight] : o.loras) {
        loras.push_back(sd_lora_t{false, weight, path.c_str()});
    }
    p.loras      = loras.data();
    p.lora_count = static_cast<uint32_t>(loras.size());
    // The sampling extras (params.h's SDCPP_SAMPLING_EXTRAS).
    if (o.vae_tiling) {
        const VaeTiling& t  = *o.vae_tiling;
        p.vae_tiling_params = sd_tiling_params_t{true, t.tile_size_x, t.tile_size_y, t.target_overlap, t.rel_size_x,
                                                 t.rel_size_y};
    }
    p.cache.mode                        = cache_mode_from_name(o.cache_mode);
    p.cache.reuse_threshold             = o.cache_threshold;
    p.sample_params.custom_sigmas       = const_cast<float*>(o.custom_sigmas.data());
    p.sample_params.custom_sigmas_count = static_cast<int>(o.custom_sigmas.size());
    p.sample_params.eta                 = o.eta;
    p.sample_params.guidance.img_cfg    = o.img_cfg_scale;
    if (o.slg) {
        skip_layers                              = o.slg->layers;
        p.sample_params.guidance.slg.layer_start = o.slg->layer_start;
        p.sample_params.guidance.slg.layer_end   = o.slg->layer_end;
        p.sample_params.guidance.slg.scale       = o.slg->scale;
    }
    p.sample_params.guidance.slg.layers      = skip_layers.data();
    p.sample_params.guidance.slg.layer_count = skip_layers.size();
}

}  // namespace

class Context {
public:
    Context(const LoadOptions& o, py::object logger) : logger_(std::move(logger)) {
        sd_ctx_params_t p;
        sd_ctx_params_init(&p);
        for (const auto& [component, path] : o.paths) {
            auto row = std::find_if(std::begin(component_fields), std::end(component_fields),
                                    [&](const auto& r) { return component == r.first; });
            if (row == std::end(component_fields)) {
                throw py::value_error("unknown model component '" + component + "'");
            }
            p.*(row->second) = c_str_or_null(path);
        }
        p.prediction = parse_name(o.prediction, str_to_prediction, PREDICTION_COUNT, "prediction");
        p.wtype                = parse_name(o.weight_type, str_to_sd_type, SD_TYPE_COUNT, "weight type");
        p.rng_type             = parse_name(o.rng, str_to_rng_type, RNG_TYPE_COUNT, "rng");
        if (p.rng_type == RNG_TYPE_COUNT) {
            sd_ctx_params_t defaults;
            sd_ctx_params_init(&defaults);
            p.rng_type = defaults.rng_type;
        }
        if (o.threads > 0) {
            p.n_threads = o.threads;
        }
        std::vector<sd_embedding_t> embeddings;
        for (const auto& [name, path] : o.embeddings) {
            embeddings.push_back(sd_embedding_t{name.c_str(), path.c_str()});
        }
        p.embeddings      = embeddings.data();
        p.embedding_count = static_cast<uint32_t>(embeddings.size());
        p.lora_apply_mode = parse_name(o.lora_apply_mode, str_to_lora_apply_mode, LORA_APPLY_MODE_COUNT, "LoRA apply mode");
        if (p.lora_apply_mode == LORA_APPLY_MODE_COUNT) {
            p.lora_apply_mode = LORA_APPLY_AUTO;
        }
        p.diffusion_flash_attn = o.flash_attn;
        p.keep_clip_on_cpu     = o.keep_clip_on_cpu;
        p.keep_vae_on_cpu      = o.keep_vae_on_cpu;
        p.vae_decode_only      = o.vae_decode_only;
        p.enable_mmap          = o.mmap;
        p.batched_cfg          = o.batched_cfg;  // 0030-batched-cfg.patch
        p.circular_x           = o.circular_x;
        p.circular_y           = o.circular_y;
        // The engine's default frees the weights after the first generation, and a second one on the
        // same context then reads freed memory and crashes; a Generator is made to be reused.
        p.free_params_immediately = false;

        CallScope scope(py::none(), logger_);
        std::string engine_exception = load_on_device(o.device, scope, [&] { ctx_.reset(new_sd_ctx(&p)); });
        if (!engine_exception.empty()) {
            throw ModelLoadError(with_engine_log("the engine failed reading the model: " + engine_exception, scope));
        }
        // Ctrl-C during loading cannot stop the engine; it is raised once loading returns.
        scope.rethrow_callback_error();
        if (!ctx_) {
            throw_device_failure(o.device, scope);
            throw ModelLoadError(with_engine_log("the engine could not load the model", scope));
        }
    }

    ~Context() {
        // Collected without close(): freeing a model takes a while, and other threads may run meanwhile.
        py::gil_scoped_release nogil;
        free_engine();
    }

    // The ticket of a generation, taken when Generator.generate() is entered: cancel() stops every
    // generation that holds a ticket by then, although it may still be checking its arguments or
    // waiting for another generation on this Generator.
    uint64_t begin_generation() { return issued_.fetch_add(1) + 1; }

    py::typing::List<py::array_t<uint8_t>> generate(const GenerationParams& o, const std::optional<Pixels>& init_image,
                                                    const std::optional<Pixels>& mask_image,
                                                    const std::optional<Pixels>& control_image,
                                                    const std::vector<Pixels>& ref_images,
                                                    const std::vector<Pixels>& id_images, py::object progress,
                                                    py::object preview, uint64_t ticket) {
        sd_img_gen_params_t p;
        sd_img_gen_params_init(&p);
        std::vector<sd_lora_t> loras;
        std::vector<int> skip_layers;
        fill_shared(o, p, loras, skip_layers);
        p.batch_count      = o.batch;
        p.control_strength = o.control_strength;
        p.init_image       = image_view(init_image);
        p.mask_image       = image_view(mask_image);
        p.control_image    = image_view(control_image);
        std::vector<sd_image_t> refs;
        for (const Pixels& ref : ref_images) {
            refs.push_back(image_view(ref));
        }
        p.ref_images            = refs.data();
        p.ref_images_count      = static_cast<int>(refs.size());
        p.auto_resize_ref_image = o.auto_resize_ref_image;
        p.increase_ref_index    = o.increase_ref_index;
        std::vector<sd_image_t> ids;
        for (const Pixels& id : id_images) {
            ids.push_back(image_view(id));
        }
        p.pm_params = sd_pm_params_t{ids.data(), static_cast<int>(ids.size()), c_str_or_null(o.id_embedding),
                                     o.style_strength};
        fill_hires_params(o.hires, &p.hires);
        return run("Generator.generate()", "image", o, std::move(progress), std::move(preview), ticket, [&](sd_ctx_t* ctx) {
            return std::make_pair(generate_image(ctx, &p), o.batch);
        });
    }

    // The frames of a video (Wan): one (height, width, 3) uint8 array per frame.
    py::typing::List<py::array_t<uint8_t>> generate_video(const GenerationParams& o, const VideoParams& v,
                                                          const std::optional<Pixels>& init_image,
                                                          const std::optional<Pixels>& end_image, py::object progress,
                                                          uint64_t ticket) {
        sd_vid_gen_params_t p;
        sd_vid_gen_params_init(&p);
        std::vector<sd_lora_t> loras;
        std::vector<int> skip_layers;
        fill_shared(o, p, loras, skip_layers);
        p.init_image                                = image_view(init_image);
        p.end_image                                 = image_view(end_image);
        p.video_frames                              = v.frames;
        p.moe_boundary                              = v.moe_boundary;
        p.high_noise_sample_params.sample_steps     = v.high_noise_steps;
        p.high_noise_sample_params.guidance.txt_cfg = std::isfinite(v.high_noise_cfg_scale) ? v.high_noise_cfg_scale
                                                                                             : o.cfg_scale;
        p.high_noise_sample_params.sample_method =
            parse_name(v.high_noise_sampler, str_to_sample_method, SAMPLE_METHOD_COUNT, "sampler");
        return run("Generator.generate_video()", "video", o, std::move(progress), py::none(), ticket, [&](sd_ctx_t* ctx) {
            int frames = 0;
            sd_image_t* images = ::generate_video(ctx, &p, &frames);
            return std::make_pair(images, frames);
        });
    }

    std::string default_sample_method() {
        return with_ctx([](sd_ctx_t* ctx) { return std::string(sd_sample_method_name(sd_get_default_sample_method(ctx))); });
    }

    std::string default_scheduler(const std::string& sample_method) {
        auto method = parse_name(sample_method, str_to_sample_method, SAMPLE_METHOD_COUNT, "sampler");
        return with_ctx([method](sd_ctx_t* ctx) {
            return std::string(sd_scheduler_name(sd_get_default_scheduler(ctx, method)));
        });
    }

    std::string model_version() {
        return with_ctx([](sd_ctx_t* ctx) { return std::string(sd_ctx_model_version(ctx)); });
    }
    std::string device() {
        return with_ctx([](sd_ctx_t* ctx) { return std::string(sd_ctx_device_name(ctx)); });
    }
    std::string weight_types() {
        return with_ctx([](sd_ctx_t* ctx) { return std::string(sd_ctx_weight_types(ctx)); });
    }
    int spatial_multiple() {
        return with_ctx([](sd_ctx_t* ctx) { return sd_ctx_spatial_multiple(ctx); });
    }
    std::string prediction() {  // 0035-context-prediction.patch
        return with_ctx([](sd_ctx_t* ctx) { return std::string(sd_prediction_name(sd_ctx_prediction(ctx))); });
    }
    bool supports_video() {
        return with_ctx([](sd_ctx_t* ctx) { return sd_ctx_supports_video_generation(ctx); });
    }
    float default_flow_shift() {  // 0035-context-prediction.patch; infinity: not a flow model
        return with_ctx([](sd_ctx_t* ctx) { return sd_ctx_default_flow_shift(ctx); });
    }

    // Stops every generation that has begun (see begin_generation): the running one at its next
    // cancellation point, the others before they start. Later generations are not affected.
    void cancel() {
        uint64_t through = issued_.load();
        uint64_t before  = cancelled_through_.load();
        while (before < through && !cancelled_through_.compare_exchange_weak(before, through)) {
        }
        if (handle_mutex_.held_by_this_thread()) {
            return;  // a log handler while close() frees the model: nothing runs
        }
        py::gil_scoped_release nogil;
        std::lock_guard<OwnedMutex> lock(handle_mutex_);
        if (ctx_ && running_ != 0 && is_cancelled(running_)) {
            sd_ctx_request_cancel(ctx_.get(), true);
        }
    }

    StageRunner stage_runner() {
        return [this](const char* what, const std::function<bool(sd_ctx_t*)>& stage) {
            CallScope scope(py::none(), logger_);
            call_mutex_.refuse_reentry(std::string("the Generator's engine (to ") + what + ")");
            bool ok = false;
            {
                py::gil_scoped_release nogil;
                std::lock_guard<OwnedMutex> lock(call_mutex_);
                ok = stage(live());
            }
            if (!ok) {
                throw GenerationError(with_engine_log(std::string("the engine could not ") + what, scope));
            }
        };
    }

    // Waits for a generation running in another thread, then frees the engine context.
    void close() {
        call_mutex_.refuse_reentry("Generator.close()");
        py::gil_scoped_release nogil;
        free_engine();
    }

    bool closed() const { return closed_.load(); }

private:
    // Runs `call` (an engine generation on the live context, returning its images and their count)
    // with the GIL released, as the generation holding `ticket`, so that cancel() stops it; turns
    // what the engine returned into arrays or the exception that says why there are none.
    template <typename Call>
    py::typing::List<py::array_t<uint8_t>> run(const char* caller, const char* output, const GenerationParams& o,
                                               py::object progress, py::object preview, uint64_t ticket, Call call) {
        if (ticket == 0) {
            ticket = begin_generation();
        }
        const bool previewing = !preview.is_none();
        CallScope scope(
            std::move(progress), logger_, [this] { sd_ctx_request_cancel(ctx_.get(), true); },
            [this, ticket] { return is_cancelled(ticket); }, std::move(preview));
        call_mutex_.refuse_reentry(caller);
        std::pair<sd_image_t*, int> images{nullptr, 0};
        bool cancelled = false;
        std::string engine_exception;
        {
            py::gil_scoped_release nogil;
            std::lock_guard<OwnedMutex> lock(call_mutex_);
            PreviewScope previews(previewing, o.preview_mode, o.preview_every);
            sd_ctx_t* ctx = live();
            if (start_running(ctx, ticket)) {
                try {
                    images = call(ctx);
                } catch (const std::exception& e) {
                    engine_exception = e.what();
                }
            }
            stop_running();
            cancelled = is_cancelled(ticket);
        }
        if (!engine_exception.empty()) {
            throw GenerationError(with_engine_log("the engine failed: " + engine_exception, scope));
        }
        if (images.first && (cancelled || scope.has_callback_error())) {
            ImageBatch discarded(images.first, images.second);
            images.first = nullptr;
        }
        scope.rethrow_callback_error();
        if (!images.first && cancelled) {
            throw Cancelled("the generation was cancelled (Generator.cancel())");
        }
        if (!images.first) {
            throw_unsupported_op(scope);
            throw GenerationError(with_engine_log(std::string("the engine produced no ") + output, scope));
        }
        ImageBatch batch(images.first, images.second);
        for (int i = 0; i < batch.size(); ++i) {
            if (!batch[i].data) {
                throw GenerationError(
                    with_engine_log(std::string("the engine failed to decode ") + output + " " + std::to_string(i), scope));
            }
        }
        return to_arrays(std::move(batch));
    }

    // Runs a quick query on the live context while close() cannot free it. The GIL is released
    // first: close() holds handle_mutex_ while the engine frees memory, and the engine may log.
    template <typename F>
    auto with_ctx(F query) -> decltype(query(nullptr)) {
        handle_mutex_.refuse_reentry("a query of the Generator's engine");
        py::gil_scoped_release nogil;
        std::lock_guard<OwnedMutex> lock(handle_mutex_);
        return query(live());
    }

    void free_engine() {
        std::lock_guard<OwnedMutex> call_lock(call_mutex_);
        std::lock_guard<OwnedMutex> handle_lock(handle_mutex_);
        ctx_.reset();
        closed_.store(true);
    }

    bool is_cancelled(uint64_t ticket) const { return ticket <= cancelled_through_.load(); }

    // Marks the generation holding `ticket` as the one running (call_mutex_ held); false when it
    // was cancelled before it could start. Under handle_mutex_, so that cancel() either sees it
    // running or has raised cancelled_through_ before this reads it.
    bool start_running(sd_ctx_t* ctx, uint64_t ticket) {
        std::lock_guard<OwnedMutex> lock(handle_mutex_);
        running_ = ticket;
        sd_ctx_request_cancel(ctx, is_cancelled(ticket));
        return !is_cancelled(ticket);
    }

    void stop_running() {
        std::lock_guard<OwnedMutex> lock(handle_mutex_);
        running_ = 0;
    }

    sd_ctx_t* live() {
        if (!ctx_) {
            throw py::value_error("the Generator is closed");
        }
        return ctx_.get();
    }

    py::object logger_;
    std::unique_ptr<sd_ctx_t, decltype(&free_sd_ctx)> ctx_{nullptr, free_sd_ctx};
    // call_mutex_ serializes engine calls on this context; handle_mutex_ guards ctx_ and running_
    // for cancel(), which must not wait for the generation it is stopping.
    OwnedMutex call_mutex_;
    OwnedMutex handle_mutex_;
    std::atomic<bool> closed_{false};
    std::atomic<uint64_t> issued_{0};             // tickets handed out by begin_generation()
    std::atomic<uint64_t> cancelled_through_{0};  // cancel() has stopped every ticket up to this one
    uint64_t running_ = 0;                        // the ticket of the generation running, 0 for none
};

void register_context(py::module_& m, py::module_& testing) {
    m.def("component_names", [] {
        std::vector<std::string> out;
        for (const auto& row : component_fields) {
            out.emplace_back(row.first);
        }
        return out;
    }, "The component files a Context reads (the keys of its `paths`), in the engine's field order.");
    py::class_<Context>(m, "Context", "An engine context holding one loaded model.")
        .def(py::init<const LoadOptions&, py::object>(), py::arg("options"), py::kw_only(),
             py::arg("logger").none(true) = py::none(),
             R"pbdoc(
Loads a model as `options` (a LoadOptions) says: its `paths`, component name (component_names()) ->
file, empty paths not used; `prediction` forces the denoiser's prediction (a prediction_names() name;
"" = the engine decides); `embeddings` are (token, file) pairs; `device` is a ggml device name ("" =
the engine's default); `threads` <= 0 means one per physical core; `batched_cfg`
evaluates classifier-free guidance's two predictions as one batch of two where the model allows it;
`circular_x` / `circular_y` pad convolutions circularly along x / y, so images tile seamlessly.
Engine log lines of this context's calls go to `logger` (default: the "sdcpp" logger).

Raises:
    sdcpp.ModelLoadError: the engine refused the files; the message carries its log.
)pbdoc")
        .def("generate", &Context::generate, py::arg("params"), py::kw_only(), py::arg("init_image") = py::none(),
             py::arg("mask_image") = py::none(), py::arg("control_image") = py::none(),
             py::arg("ref_images") = std::vector<Pixels>{}, py::arg("id_images") = std::vector<Pixels>{},
             py::arg("progress").none(true) = py::none(), py::arg("preview").none(true) = py::none(),
             py::arg("ticket") = 0,
            R"pbdoc(
Text (and image) to image. Images are (height, width, 3) uint8 arrays, the mask (height, width),
all of the output size; `ref_images` are (height, width, 3) arrays of any size, encoded as in-context
references; `id_images` (PhotoMaker's pictures of one person, any size) with params.id_embedding and
params.style_strength fill the engine's sd_pm_params_t; sdcpp.Generator checks them. Returns one (height, width, 3) uint8 array per
image, viewing the engine's memory.
`progress(step, steps, seconds)` is called on this thread; an exception it raises is re-raised here.
`preview(step, pixels)` likewise, with a (height, width, 3) uint8 copy of the preview image, at every
params.preview_every-th step, made as params.preview_mode says.
`ticket` is begin_generation()'s, taken when the caller was entered (0: take one now).

Raises:
    sdcpp.Cancelled: cancel() was called after this generation's ticket was taken.
    RuntimeError: called from a progress callback or log handler of a call on this context.
    KeyboardInterrupt: Ctrl-C, checked at every sampling step.
    sdcpp.GenerationError: the engine produced no image; the message carries its log.
)pbdoc")
        .def("generate_video", &Context::generate_video, py::arg("params"), py::arg("video"), py::kw_only(),
             py::arg("init_image") = py::none(), py::arg("end_image") = py::none(),
             py::arg("progress").none(true) = py::none(), py::arg("ticket") = 0,
             R"pbdoc(
Text (and first/last frame) to video, for the models supports_video says. Takes generate()'s settings
(batch, hires, control and mask are not used) and the video's own; init_image and end_image are
(height, width, 3) uint8 arrays of the output size. Returns one (height, width, 3) uint8 array per
frame, viewing the engine's memory; progress and ticket as for generate().

Raises:
    sdcpp.Cancelled: cancel() was called after this generation's ticket was taken.
    RuntimeError: called from a progress callback or log handler of a call on this context.
    sdcpp.GenerationError: the engine produced no video; the message carries its log.
)pbdoc")
        .def("default_sample_method", &Context::default_sample_method)
        .def("default_scheduler", &Context::default_scheduler, py::arg("sample_method"))
        .def_property_readonly("model_version", &Context::model_version)
        .def_property_readonly("device", &Context::device)
        .def_property_readonly("weight_types", &Context::weight_types)
        .def_property_readonly("spatial_multiple", &Context::spatial_multiple)
        .def_property_readonly("prediction", &Context::prediction)
        .def_property_readonly("default_flow_shift", &Context::default_flow_shift)
        .def_property_readonly("supports_video", &Context::supports_video,
                               "Whether the model makes videos (Wan, SVD) rather than images.")
        .def_property_readonly("closed", &Context::closed)
        .def("begin_generation", &Context::begin_generation,
             "A ticket for generate(): cancel() stops the generations whose ticket was taken before it.")
        .def("cancel", &Context::cancel,
             "Stops the generation running and those that have a ticket (begin_generation) but wait for it.")
        .def("close", &Context::close, "Frees the model; waits for a generation in progress to finish.")
        .def(
            "tokenize", [](Context& self, const std::string& prompt) { return tokenize(self.stage_runner(), prompt); },
            py::arg("prompt"),
            "(ids, weights): the token ids and emphasis weights the text encoder gets, in chunks of 77.")
        .def(
            "initial_noise",
            [](Context& self, int64_t seed, int width, int height) {
                return initial_noise(self.stage_runner(), seed, width, height);
            },
            py::kw_only(), py::arg("seed"), py::arg("width"), py::arg("height"),
            "The initial latent noise (1, channels, height / f, width / f) of a generation with `seed`.")
        .def(
            "sigmas",
            [](Context& self, int steps, const std::string& sample_method, const std::string& scheduler, int width,
               int height) {
                return sigmas(self.stage_runner(),
                              parse_name(sample_method, str_to_sample_method, SAMPLE_METHOD_COUNT, "sampler"),
                              parse_name(scheduler, str_to_scheduler, SCHEDULER_COUNT, "scheduler"), steps, width,
                              height);
            },
            py::kw_only(), py::arg("steps"), py::arg("sample_method") = "", py::arg("scheduler") = "",
            py::arg("width") = 512, py::arg("height") = 512,
            "The steps + 1 noise levels of a generation, ending at 0 (\"\" = the defaults).");

    // 0004-check-ops-before-compute.patch's hook: the test of UnsupportedOperation has no backend that
    // lacks an op, so it makes one. Process-wide, and undone with None.
    testing.def(
        "refuse_op",
        [](const std::optional<std::string>& op) { sd_refuse_op_for_tests(op ? op->c_str() : nullptr); },
        py::arg("op").none(true),
        "Makes every backend refuse this ggml op (by ggml_op_desc name) in model graphs; None undoes it.");
    // The stages one at a time, for the parity tests: production code runs them only as generate() does.
    testing.def(
        "encode_tokens",
        [](Context& ctx, const IdArray& ids, const FloatArray& weights, int clip_skip) {
            return encode_tokens(ctx.stage_runner(), ids, weights, clip_skip);
        },
        py::arg("context"), py::arg("ids"), py::arg("weights"), py::kw_only(), py::arg("clip_skip") = -1,
        "The conditioning (n_tokens, hidden) of ids and weights as Context.tokenize() gives them.");
    testing.def(
        "encode_vector",
        [](Context& ctx, const IdArray& ids, const FloatArray& weights, int clip_skip, int width, int height) {
            return encode_vector(ctx.stage_runner(), ids, weights, clip_skip, width, height);
        },
        py::arg("context"), py::arg("ids"), py::arg("weights"), py::kw_only(), py::arg("clip_skip") = -1,
        py::arg("width") = 1024, py::arg("height") = 1024,
        "SDXL's vector conditioning y (pooled text embedding, then size embeddings) of ids and weights.");
    testing.def(
        "diffusion_model",
        [](Context& ctx, const FloatArray& x, float timestep, const FloatArray& context) {
            return diffusion_model(ctx.stage_runner(), x, timestep, context);
        },
        py::arg("context"), py::arg("x"), py::arg("timestep"), py::arg("conditioning"),
        "One diffusion-model output for latent x (C, H, W), a timestep and a conditioning (n, dim).");
    testing.def(
        "decode_latent",
        [](Context& ctx, const FloatArray& latent) { return decode_latent(ctx.stage_runner(), latent); },
        py::arg("context"), py::arg("latent"),
        "The image (3, H, W) in [0, 1] a final latent (C, h, w) decodes to, before 8-bit rounding.");
}

}  // namespace sdcpp
