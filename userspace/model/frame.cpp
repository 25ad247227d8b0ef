#include <string_view>

#include <fmt/format.h>

#include "model/snapshot.h"

namespace memobserve {

namespace {

std::string_view base_name(std::string_view path) {
    const auto slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::string Frame::display() const {
    std::string text = symbol.empty()
                           ? fmt::format("{}+{:#x}", base_name(module), offset)
                           : fmt::format("{}+{:#x} ({})", symbol, offset, base_name(module));
    if (line > 0 && !file.empty())
        text += fmt::format(" {}:{}", base_name(file), line);
    return text;
}

FrameChain::FrameChain(std::vector<Frame> frames)
    : frames_(std::make_shared<const std::vector<Frame>>(std::move(frames))) {}

FrameChain::FrameChain(std::initializer_list<Frame> frames)
    : frames_(std::make_shared<const std::vector<Frame>>(frames)) {}

void FrameChain::push_back(Frame frame) {
    std::vector<Frame> copy = frames_ ? *frames_ : std::vector<Frame>{};
    copy.push_back(std::move(frame));
    frames_ = std::make_shared<const std::vector<Frame>>(std::move(copy));
}

const std::vector<Frame>& FrameChain::list() const {
    static const std::vector<Frame> kNoFrames;
    return frames_ ? *frames_ : kNoFrames;
}

}  // namespace memobserve
