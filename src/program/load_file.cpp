// load_file: mmap a program file read-only and parse it in place, so the
// weights are used straight from the page cache (zero-copy).

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "program/format.hpp"
#include "program/program_data.hpp"
#include "shoal/error.hpp"

namespace shoal::program {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(ErrorKind::invalid_argument,
              "cannot load program file '" + path + "': " + what);
}

// Closes the descriptor on every path out of load_file.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

/// Whether the file starts with the magic and its header's file size field
/// (format.hpp) is `size`.
bool looks_like_program(int fd, uint64_t size) {
  uint8_t head[format::kFixedHeaderSize];
  if (::pread(fd, head, sizeof head, 0) != ssize_t(sizeof head)) return false;
  uint64_t file_size = 0;
  for (int i = 7; i >= 0; --i) file_size = file_size << 8 | head[format::kOffFileSize + i];
  return std::memcmp(head, format::kMagic, sizeof format::kMagic) == 0 && file_size == size;
}

}  // namespace

std::shared_ptr<ProgramData> load_file(const std::string& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) fail(path, std::strerror(errno));
  struct stat st;
  if (::fstat(f.fd, &st) != 0) fail(path, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail(path, "it is a directory");
  if (!S_ISREG(st.st_mode)) fail(path, "it is not a regular file");
  if (st.st_size == 0) fail(path, "the file is empty");
  size_t size = size_t(st.st_size);
  // Pages are read in at once (MAP_POPULATE) only when the fixed header says
  // this is a program file of this size: a huge file that is not one (say a
  // sparse file) is rejected without being read.
  const bool populate = looks_like_program(f.fd, uint64_t(size));
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | (populate ? MAP_POPULATE : 0),
                      f.fd, 0);
  if (addr == MAP_FAILED)
    fail(path, std::string("mmap: ") + std::strerror(errno));
  ::close(f.fd);  // the mapping stays valid without the descriptor
  f.fd = -1;
  std::shared_ptr<void> mapping(addr, [size](void* p) { ::munmap(p, size); });
  try {
    auto p = deserialize(static_cast<const uint8_t*>(addr), size, std::move(mapping));
    p->weights_mapped = true;
    return p;
  } catch (const Error& e) {
    throw Error(e.kind(), "program file '" + path + "': " + e.what());
  }
}

}  // namespace shoal::program
