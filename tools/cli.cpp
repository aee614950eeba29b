// The argument parser and output helpers declared in cli.hpp.
#include "cli.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <utility>

namespace shoal::cli {

std::string Args::value(const std::string& name,
                        const std::string& fallback) const {
  auto it = options.find(name);
  return it == options.end() || it->second.empty() ? fallback
                                                   : it->second.back();
}

std::vector<std::string> Args::values(const std::string& name) const {
  auto it = options.find(name);
  return it == options.end() ? std::vector<std::string>{} : it->second;
}

int Args::int_value(const std::string& name, int fallback,
                    int min_value) const {
  if (!has(name)) return fallback;
  const std::string text = value(name);
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < long(min_value) ||
      v > long(std::numeric_limits<int>::max()))
    throw UsageError("--" + name + " expects an integer >= " +
                     std::to_string(min_value) + ", got '" + text + "'");
  return int(v);
}

Command::Command(std::string name, std::string synopsis, std::string summary)
    : name_(std::move(name)),
      synopsis_(std::move(synopsis)),
      summary_(std::move(summary)) {}

Command& Command::flag(const std::string& long_name, char short_name,
                       const std::string& help) {
  opts_.push_back({long_name, short_name, "", help});
  return *this;
}

Command& Command::option(const std::string& long_name, char short_name,
                         const std::string& metavar, const std::string& help) {
  opts_.push_back({long_name, short_name, metavar, help});
  return *this;
}

Command& Command::positionals(size_t min, size_t max) {
  min_pos_ = min;
  max_pos_ = max;
  return *this;
}

Command& Command::epilog(const std::string& text) {
  epilog_ = text;
  return *this;
}

const Command::Opt* Command::find_long(const std::string& name) const {
  for (const Opt& o : opts_)
    if (o.long_name == name) return &o;
  return nullptr;
}

const Command::Opt* Command::find_short(char c) const {
  for (const Opt& o : opts_)
    if (o.short_name != 0 && o.short_name == c) return &o;
  return nullptr;
}

Args Command::parse(const std::vector<std::string>& argv) const {
  Args args;
  bool options_done = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      args.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    if (a == "-h" || a == "--help") {
      args.help = true;
      return args;
    }
    const Opt* opt = nullptr;
    std::string inline_value;
    bool has_inline = false;
    std::string shown = a;
    if (a.rfind("--", 0) == 0) {
      std::string name = a.substr(2);
      const size_t eq = name.find('=');
      if (eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        has_inline = true;
        name.resize(eq);
        shown = "--" + name;
      }
      opt = find_long(name);
    } else {
      opt = find_short(a[1]);
      shown = a.substr(0, 2);
      if (a.size() > 2) {  // -oFILE
        inline_value = a.substr(2);
        has_inline = true;
      }
    }
    if (opt == nullptr) throw UsageError("unknown option '" + shown + "'");
    if (opt->metavar.empty()) {
      if (has_inline) throw UsageError(shown + " takes no value");
      args.options[opt->long_name].push_back("");
      continue;
    }
    if (!has_inline) {
      if (i + 1 >= argv.size())
        throw UsageError(shown + " expects a value (" + opt->metavar + ")");
      inline_value = argv[++i];
    }
    args.options[opt->long_name].push_back(inline_value);
  }
  if (args.positional.size() < min_pos_ || args.positional.size() > max_pos_) {
    if (args.positional.size() < min_pos_)
      throw UsageError("missing argument; usage: " + synopsis_);
    throw UsageError("unexpected argument '" + args.positional[max_pos_] +
                     "'; usage: " + synopsis_);
  }
  return args;
}

namespace {

// Word-wraps `text` to `cols` columns, continuation lines indented by
// `indent` (the first line is assumed to start at column `indent`).
std::string wrap(const std::string& text, size_t indent, size_t cols) {
  const size_t room = cols > indent + 20 ? cols - indent : 20;
  std::istringstream words(text);
  std::string out, word;
  size_t line = 0;
  while (words >> word) {
    if (line > 0 && line + 1 + word.size() > room) {
      out += "\n" + std::string(indent, ' ');
      line = 0;
    } else if (line > 0) {
      out += ' ';
      ++line;
    }
    out += word;
    line += word.size();
  }
  return out;
}

}  // namespace

std::string Command::help() const {
  std::ostringstream os;
  os << "usage: " << synopsis_ << "\n\n" << summary_ << "\n";
  if (!opts_.empty()) {
    os << "\noptions:\n";
    std::vector<std::string> heads;
    size_t width = 0;
    for (const Opt& o : opts_) {
      std::string h = "  ";
      h += o.short_name ? std::string("-") + o.short_name + ", " : "    ";
      h += "--" + o.long_name;
      if (!o.metavar.empty()) h += " " + o.metavar;
      width = std::max(width, h.size());
      heads.push_back(h);
    }
    heads.push_back("  -h, --help");
    for (size_t i = 0; i < heads.size(); ++i) {
      const std::string& text =
          i < opts_.size() ? opts_[i].help : std::string("show this help");
      os << heads[i] << std::string(width + 2 - heads[i].size(), ' ')
         << wrap(text, width + 2, 80) << "\n";
    }
  }
  if (!epilog_.empty()) os << "\n" << epilog_ << "\n";
  return os.str();
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += char(c);
        }
    }
  }
  return out + "\"";
}

std::string json_number(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

std::string json_shape(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[48];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%llu B",
                  static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
  return buf;
}

std::vector<int> parse_int_list(const std::string& text,
                                const std::string& what) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno == ERANGE || v < 0 ||
        v > long(std::numeric_limits<int>::max()))
      throw UsageError(what + " expects a comma list of ids like 0,1; got '" +
                       text + "'");
    out.push_back(int(v));
  }
  if (out.empty()) throw UsageError(what + " expects at least one id");
  return out;
}

std::string int_ranges(const std::vector<int>& v) {
  std::string out;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += std::to_string(v[i]);
    if (j > i) out += "-" + std::to_string(v[j]);
    i = j + 1;
  }
  return out.empty() ? "-" : out;
}

}  // namespace shoal::cli
