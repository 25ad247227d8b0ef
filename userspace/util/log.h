// Diagnostics on stderr. -v shows info, -vv debug (libbpf's own output too).
#pragma once

#include <cstdio>

#include <fmt/format.h>

namespace memobserve::log {

enum class Level { warning = 0, info = 1, debug = 2 };

void set_verbosity(int verbosity);
bool enabled(Level level);

template <typename... Args>
void write(Level level, fmt::format_string<Args...> format, Args&&... args) {
    if (!enabled(level))
        return;
    static constexpr const char* kPrefix[] = {"warning: ", "", "debug: "};
    fmt::print(stderr, "memobserve: {}{}\n", kPrefix[static_cast<int>(level)],
               fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
void warning(fmt::format_string<Args...> format, Args&&... args) {
    write(Level::warning, format, std::forward<Args>(args)...);
}

template <typename... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
    write(Level::info, format, std::forward<Args>(args)...);
}

template <typename... Args>
void debug(fmt::format_string<Args...> format, Args&&... args) {
    write(Level::debug, format, std::forward<Args>(args)...);
}

}  // namespace memobserve::log
