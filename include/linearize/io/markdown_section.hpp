#pragma once
// A generated section of a markdown file (README's result tables): the text between the lines
// `<!-- name:begin -->` and `<!-- name:end -->` is replaced, the rest kept, atomically. The
// markers must be there already, so a program never appends to the wrong file.
#include <linearize/support/atomic_file.hpp>
#include <linearize/support/error.hpp>

#include <filesystem>
#include <string>

namespace linearize::io {

/// `text` with the section `name` replaced by `content` (which should end with a newline).
[[nodiscard]] inline std::string replace_section(const std::string& text, const std::string& name,
                                                 const std::string& content, const std::string& source) {
  const std::string begin = "<!-- " + name + ":begin -->\n", end = "<!-- " + name + ":end -->";
  // A marker is a whole line: the same text quoted inside a sentence is not one.
  auto b = text.find(begin);
  while (b != std::string::npos && b > 0 && text[b - 1] != '\n') b = text.find(begin, b + 1);
  require(b != std::string::npos, source, ": no line '", begin.substr(0, begin.size() - 1),
          "'; expected the markers of section '", name, "'");
  const auto e = text.find(end, b + begin.size());
  require(e != std::string::npos, source, ": no line '", end, "' after '", begin.substr(0, begin.size() - 1), "'");
  return text.substr(0, b + begin.size()) + content + text.substr(e);
}

inline void write_section(const std::filesystem::path& path, const std::string& name, const std::string& content) {
  const auto text = replace_section(read_file(path), name, content, path.string());
  write_atomically(path, [&](std::ostream& out) { out << text; });
}

}  // namespace linearize::io
