#pragma once
// Files that long runs depend on (checkpoints, masks, results) are written to a temporary name
// in the same directory and renamed into place: an interrupted write never leaves a torn file.
#include <linearize/support/error.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <fcntl.h>
#include <unistd.h>

namespace linearize {

/// Calls `write(stream)` on a temporary file beside `path`, flushes it to disk, then renames
/// it over `path`. On any failure (a read-only directory, a full disk) the old file, if any, is
/// untouched, the temporary removed, and a linearize::error names the file and the reason.
inline void write_atomically(const std::filesystem::path& path,
                             const std::function<void(std::ostream&)>& write) {
  namespace fs = std::filesystem;
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const auto failed = [&](const std::string& step, const std::string& reason) {
    fail("cannot write '", path.string(), "': ", step, ": ", reason,
         fs::exists(path) ? "; the previous file is as it was" : "");
  };
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir))
    failed("cannot create directory '" + dir.string() + "'", ec ? ec.message() : "not a directory");
  const fs::path tmp = dir / (path.filename().string() + ".tmp." + std::to_string(::getpid()));
  try {
    {
      errno = 0;
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) failed("cannot create '" + tmp.string() + "'", std::strerror(errno));
      write(out);
      out.flush();
      // errno says why a stream failed (ENOSPC, EFBIG, EROFS); the stream itself does not.
      if (!out) failed("writing '" + tmp.string() + "' failed", std::strerror(errno));
      out.close();
      if (!out) failed("closing '" + tmp.string() + "' failed", std::strerror(errno));
    }
    // fsync so that the rename never exposes a file whose data is not yet on disk; a failed
    // fsync (EIO, ENOSPC on some file systems) means the data may not be there.
    const int fd = ::open(tmp.c_str(), O_RDONLY);
    if (fd < 0) failed("cannot reopen '" + tmp.string() + "' to sync it", std::strerror(errno));
    const int synced = ::fsync(fd);
    const int sync_errno = errno;
    ::close(fd);
    if (synced != 0) failed("syncing '" + tmp.string() + "' to disk failed", std::strerror(sync_errno));
    fs::rename(tmp, path, ec);
    if (ec) failed("renaming '" + tmp.string() + "' into place failed", ec.message());
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
