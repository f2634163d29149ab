#pragma once
// Decoding a JPEG held in memory to planar RGB bytes with libjpeg (Debian: libjpeg62-turbo).
// Grayscale JPEGs come out as RGB with three equal channels (libjpeg's own conversion).
//
// libjpeg reports a fatal error by calling error_exit, whose default prints and calls exit();
// here it longjmps back to the decoder, which returns the message, and the caller throws a
// linearize::error naming the file. Corrupt entropy-coded data and a truncated file are only
// *warnings* to libjpeg (it fills the rest with gray and goes on); they are errors here, so a
// damaged file never becomes a silently wrong image. Warnings about metadata only (extra bytes
// before a marker, an unknown JFIF revision, an odd Adobe transform code, a bad ICC marker)
// leave the pixels intact and are ignored.
#include <linearize/support/error.hpp>

#include <torch/torch.h>

#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <jerror.h>
#include <jpeglib.h>

namespace linearize::data {

/// The most pixels decode_jpeg accepts (384 MiB of RGB bytes). A JPEG's header may claim up to
/// 65500x65500 pixels (12.8 GB) in a few hundred bytes, and a progressive one can fill them all
/// from a small file: the header is not trusted for an allocation that large.
inline constexpr int64_t jpeg_max_pixels = int64_t{1} << 27;

namespace detail {

struct jpeg_failure {
  jpeg_error_mgr manager;  // first member: libjpeg hands back a pointer to it
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64];
};

[[noreturn]] inline void jpeg_error_exit(j_common_ptr cinfo) {
  auto* failure = reinterpret_cast<jpeg_failure*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, failure->message);
  std::longjmp(failure->jump, 1);
}

inline void jpeg_emit_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  switch (cinfo->err->msg_code) {
    case JWRN_EXTRANEOUS_DATA:
    case JWRN_JFIF_MAJOR:
    case JWRN_ADOBE_XFORM:
    case JWRN_BOGUS_ICC:
      return;  // metadata only: the pixels are intact
    default:
      jpeg_error_exit(cinfo);  // corrupt or missing image data
  }
}

/// Decodes `size` bytes into `rgb` (planar [3, height, width]) when the image is exactly
/// height x width (any size when both are 0: the size is returned through height and width,
/// and `rgb` must then be null, for a first pass). Returns an empty string on success, else
/// the reason. Nothing with a destructor lives in this function: longjmp would skip it.
inline std::string decode_jpeg_planar(const uint8_t* data, size_t size, uint8_t* rgb,
                                      int64_t& height, int64_t& width,
                                      std::vector<uint8_t>& row) {
  jpeg_decompress_struct cinfo{};
  jpeg_failure failure{};
  cinfo.err = jpeg_std_error(&failure.manager);
  failure.manager.error_exit = &jpeg_error_exit;
  failure.manager.emit_message = &jpeg_emit_message;
  if (setjmp(failure.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return std::string("malformed JPEG (libjpeg: ") + failure.message + ")";
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;
  const auto h = static_cast<int64_t>(cinfo.image_height);
  const auto w = static_cast<int64_t>(cinfo.image_width);
  if (rgb == nullptr) {
    height = h;
    width = w;
    jpeg_destroy_decompress(&cinfo);
    return {};
  }
  if (h != height || w != width) {
    std::snprintf(failure.message, sizeof failure.message, "image is %lldx%lld, expected %lldx%lld",
                  static_cast<long long>(h), static_cast<long long>(w),
                  static_cast<long long>(height), static_cast<long long>(width));
    jpeg_destroy_decompress(&cinfo);
    return failure.message;
  }
  row.resize(static_cast<size_t>(w * 3));
  jpeg_start_decompress(&cinfo);
  if (cinfo.output_components != 3) {
    std::snprintf(failure.message, sizeof failure.message, "decodes to %d components, expected 3",
                  cinfo.output_components);
    jpeg_destroy_decompress(&cinfo);
    return failure.message;
  }
  const int64_t plane = h * w;
  while (cinfo.output_scanline < cinfo.output_height) {
    const auto y = static_cast<int64_t>(cinfo.output_scanline);
    JSAMPROW rows[1] = {row.data()};
    jpeg_read_scanlines(&cinfo, rows, 1);
    uint8_t* r = rgb + y * w;
    for (int64_t x = 0; x < w; ++x) {
      r[x] = row[static_cast<size_t>(3 * x)];
      r[plane + x] = row[static_cast<size_t>(3 * x + 1)];
      r[2 * plane + x] = row[static_cast<size_t>(3 * x + 2)];
    }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return {};
}

}  // namespace detail

/// A JPEG's pixels as uint8 [3, H, W] (RGB; grayscale replicated). `name` (the file it came
/// from) is what an error message names.
[[nodiscard]] inline torch::Tensor decode_jpeg(const std::vector<uint8_t>& bytes,
                                               const std::string& name) {
  int64_t h = 0, w = 0;
  std::vector<uint8_t> row;
  auto why = detail::decode_jpeg_planar(bytes.data(), bytes.size(), nullptr, h, w, row);
  require(why.empty(), "'", name, "': ", why);
  require(h * w <= jpeg_max_pixels, "'", name, "': image is ", h, "x", w, ", more than the ",
          jpeg_max_pixels, " pixels decode_jpeg accepts");
  auto out = torch::empty({3, h, w}, torch::kByte);
  why = detail::decode_jpeg_planar(bytes.data(), bytes.size(), out.data_ptr<uint8_t>(), h, w, row);
  require(why.empty(), "'", name, "': ", why);
  return out;
}

}  // namespace linearize::data
