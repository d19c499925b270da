// Images returned by the engine, owned until Python lets go of the last array that views them.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/typing.h>

#include <memory>
#include <optional>

#include "module.h"
#include "stable-diffusion.h"

namespace sdcpp {

using Pixels = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

// A view of (height, width[, channels]) uint8 pixels that the caller keeps alive for the call;
// an empty sd_image_t for None.
sd_image_t image_view(const std::optional<Pixels>& pixels);
sd_image_t image_view(const Pixels& pixels);

// Owns the engine's sd_image_t array and each image's pixels (both malloc'd by the engine, so
// freed with free()). Numpy arrays view the pixels directly and keep this object alive as their base.
class ImageBatch {
public:
    ImageBatch(sd_image_t* images, int count);
    // Batches whose pixels are still allocated, in this process: a leak check for tests.
    static int live_count();
    int size() const { return count_; }
    const sd_image_t& operator[](int i) const { return images_.get()[i]; }

private:
    struct Deleter {
        int count;
        void operator()(sd_image_t* images) const;
    };
    std::unique_ptr<sd_image_t, Deleter> images_;
    int count_;
};

// Moves the batch into a Python object and returns one (height, width, channels) uint8 array per
// image, each a view of the engine's memory with that object as its base.
py::typing::List<py::array_t<uint8_t>> to_arrays(ImageBatch batch);

}  // namespace sdcpp
