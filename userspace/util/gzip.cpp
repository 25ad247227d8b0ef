#include "util/gzip.h"

#include <zlib.h>

#include <fmt/format.h>

#include "util/error.h"

namespace memobserve {

namespace {

// deflateInit2 and inflateInit2 write and read a gzip header and trailer,
// instead of the zlib ones, when 16 is added to the window bits.
constexpr int kGzipWindowBits = 15 + 16;
constexpr std::size_t kChunkSize = 64 * 1024;

}  // namespace

std::string gzip_compress(const std::string& data) {
    z_stream stream{};
    if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, kGzipWindowBits, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        throw Error("gzip compression failed: deflateInit2 failed");
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream.avail_in = static_cast<uInt>(data.size());

    std::string compressed;
    int status = Z_OK;
    while (status == Z_OK) {
        char chunk[kChunkSize];
        stream.next_out = reinterpret_cast<Bytef*>(chunk);
        stream.avail_out = sizeof(chunk);
        status = deflate(&stream, Z_FINISH);
        compressed.append(chunk, sizeof(chunk) - stream.avail_out);
    }
    deflateEnd(&stream);
    if (status != Z_STREAM_END)
        throw Error(fmt::format("gzip compression failed: zlib status {}", status));
    return compressed;
}

std::string gzip_decompress(const std::string& compressed) {
    z_stream stream{};
    if (inflateInit2(&stream, kGzipWindowBits) != Z_OK)
        throw Error("gzip decompression failed: inflateInit2 failed");
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
    stream.avail_in = static_cast<uInt>(compressed.size());

    std::string data;
    int status = Z_OK;
    while (status == Z_OK) {
        char chunk[kChunkSize];
        stream.next_out = reinterpret_cast<Bytef*>(chunk);
        stream.avail_out = sizeof(chunk);
        status = inflate(&stream, Z_NO_FLUSH);
        data.append(chunk, sizeof(chunk) - stream.avail_out);
        // Z_BUF_ERROR with input left over only means the output chunk was full.
        if (status == Z_BUF_ERROR && stream.avail_out == 0)
            status = Z_OK;
    }
    inflateEnd(&stream);
    if (status != Z_STREAM_END)
        throw Error(fmt::format("invalid gzip data: {} (zlib status {})",
                                stream.msg ? stream.msg : "truncated input", status));
    return data;
}

}  // namespace memobserve
