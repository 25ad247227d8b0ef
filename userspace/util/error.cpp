#include "util/error.h"

#include <cstring>
#include <fmt/format.h>

namespace memobserve {

std::string describe_errno(int error) {
    const char* name = strerrorname_np(error);
    return fmt::format("{} ({})", std::strerror(error), name ? name : fmt::format("errno {}", error));
}

}  // namespace memobserve
