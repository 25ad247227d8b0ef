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

}  // namespace memobserve
