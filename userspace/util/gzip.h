// gzip compression with zlib, for pprof files.
#pragma once

#include <string>

namespace memobserve {

std::string gzip_compress(const std::string& data);

// Throws Error when `compressed` is not complete gzip data.
std::string gzip_decompress(const std::string& compressed);

}  // namespace memobserve
