// Output files: written to a temporary file in the same directory, then
// renamed over the destination, readable by the owner only. A failure leaves
// no partial file, and a symlink at the destination is replaced, not followed.
// A device, FIFO or socket at the destination is rejected instead.
#pragma once

#include <string>

namespace memobserve {

// Throws Error when the directory of `path` does not exist or is not writable,
// so that a long trace does not end in a failed write.
void check_output_path(const std::string& path);

void write_file_atomically(const std::string& path, const std::string& contents);

}  // namespace memobserve
