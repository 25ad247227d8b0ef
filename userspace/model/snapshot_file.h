// Reading and writing snapshot files, with errors that name the file and the
// problem.
#pragma once

#include <string>

#include "model/snapshot.h"

namespace memobserve {

// Throws Error naming `path` when the file cannot be read, is not JSON (a
// truncated file included), is not a snapshot, or has another schema version.
Snapshot load_snapshot(const std::string& path);

// Writes `snapshot` as indented JSON through write_file_atomically: mode 0600,
// no partial file on failure. Throws Error when the write fails.
void save_snapshot(const std::string& path, const Snapshot& snapshot);

}  // namespace memobserve
