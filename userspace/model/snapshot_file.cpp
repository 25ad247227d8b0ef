#include "model/snapshot_file.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/atomic_file.h"
#include "util/error.h"

namespace memobserve {

Snapshot load_snapshot(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file)
        throw Error(fmt::format("cannot read snapshot '{}': {}", path, describe_errno(errno)),
                    "check the path");
    std::stringstream text;
    text << file.rdbuf();

    nlohmann::json document;
    try {
        document = nlohmann::json::parse(text.str());
    } catch (const nlohmann::json::parse_error& error) {
        throw Error(fmt::format("'{}' is not a memobserve snapshot: invalid JSON at byte {} "
                                "(a truncated file ends this way)",
                                path, error.byte),
                    "write a new one with 'memobserve snapshot'");
    }
    try {
        return snapshot_from_json(document);
    } catch (const Error& error) {
        throw Error(fmt::format("'{}': {}", path, error.what()), error.hint());
    }
}

void save_snapshot(const std::string& path, const Snapshot& snapshot) {
    write_file_atomically(path, to_json(snapshot).dump(1) + "\n");
}

}  // namespace memobserve
