#include "images.h"

#include <atomic>
#include <cstdlib>

namespace sdcpp {

namespace {
std::atomic<int> live_batches{0};
}

sd_image_t image_view(const std::optional<Pixels>& pixels) {
    return pixels ? image_view(*pixels) : sd_image_t{0, 0, 0, nullptr};
}

sd_image_t image_view(const Pixels& a) {
    uint32_t channels = a.ndim() == 3 ? static_cast<uint32_t>(a.shape(2)) : 1;
    return sd_image_t{static_cast<uint32_t>(a.shape(1)), static_cast<uint32_t>(a.shape(0)), channels,
                      const_cast<uint8_t*>(a.data())};
}

ImageBatch::ImageBatch(sd_image_t* images, int count) : images_(images, Deleter{count}), count_(count) {
    live_batches.fetch_add(1);
}

int ImageBatch::live_count() {
    return live_batches.load();
}

void ImageBatch::Deleter::operator()(sd_image_t* images) const {
    live_batches.fetch_sub(1);
    for (int i = 0; i < count; ++i) {
        std::free(images[i].data);
    }
    std::free(images);
}

py::typing::List<py::array_t<uint8_t>> to_arrays(ImageBatch batch) {
    py::object owner = py::cast(std::move(batch));
    const ImageBatch& b = owner.cast<const ImageBatch&>();
    py::typing::List<py::array_t<uint8_t>> out;
    for (int i = 0; i < b.size(); ++i) {
        const sd_image_t& img = b[i];
        out.append(py::array_t<uint8_t>(
            {static_cast<py::ssize_t>(img.height), static_cast<py::ssize_t>(img.width),
             static_cast<py::ssize_t>(img.channel)},
            img.data, owner));
    }
    return out;
}

void register_images(py::module_& m, py::module_& testing) {
    py::class_<ImageBatch>(m, "ImageBatch",
                           "Engine-owned pixels of one generation; the base of the arrays it returns.")
        .def("__len__", &ImageBatch::size);
    testing.def("live_image_batches", &ImageBatch::live_count,
                "Batches whose engine memory is still allocated in this process.");
}

}  // namespace sdcpp
