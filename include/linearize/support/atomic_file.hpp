#pragma once
// Files that long runs depend on (checkpoints, masks, results) are written to a temporary name
// in the same directory and renamed into place: an interrupted write never leaves a torn file.
#include <linearize/support/error.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <unistd.h>

namespace linearize {

/// Calls `write(stream)` on a temporary file beside `path`, flushes it to disk, then renames
/// it over `path`. On any failure the old file (if any) is untouched and the temporary removed.
inline void write_atomically(const std::filesystem::path& path,
                             const std::function<void(std::ostream&)>& write) {
  namespace fs = std::filesystem;
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  require(fs::is_directory(dir), "cannot create directory '", dir.string(), "' for '",
          path.string(), "'");
  const fs::path tmp = dir / (path.filename().string() + ".tmp." + std::to_string(::getpid()));
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      require(static_cast<bool>(out), "cannot open '", tmp.string(), "' for writing");
      write(out);
      out.flush();
      require(static_cast<bool>(out), "writing '", tmp.string(), "' failed (disk full?)");
    }
    // fsync so that the rename never exposes a file whose data is not yet on disk.
    if (FILE* f = std::fopen(tmp.c_str(), "rb")) {
      ::fsync(::fileno(f));
      std::fclose(f);
    }
    fs::rename(tmp, path);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
}

/// Reads a whole file; a missing or unreadable file is a linearize::error naming it.
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  require(static_cast<bool>(in), "cannot open '", path.string(), "': file missing or unreadable");
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  require(!in.bad(), "reading '", path.string(), "' failed");
  return data;
}

}  // namespace linearize
