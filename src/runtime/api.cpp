// The public C++ classes Program, Tensor and Runtime.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "device/registry.hpp"
#include "program/program_data.hpp"
#include "runtime/session.hpp"
#include "shoal/shoal.hpp"

namespace shoal {

const char* version() noexcept { return SHOAL_VERSION; }  // shoal/version.h

// --- Program -----------------------------------------------------------------

Program::Program(std::shared_ptr<const program::ProgramData> data) : data_(std::move(data)) {}

Program Program::load(const std::string& path) { return Program(program::load_file(path)); }

Program Program::from_bytes(const void* data, size_t size) {
  if (!data && size) throw Error(ErrorKind::invalid_argument, "program bytes: null pointer");
  return Program(program::deserialize(static_cast<const uint8_t*>(data), size, nullptr));
}

const program::ProgramData& Program::data() const {
  if (!data_) throw Error(ErrorKind::invalid_argument, "empty program");
  return *data_;
}

std::vector<uint8_t> Program::to_bytes() const { return program::serialize(data()); }

void Program::save(const std::string& path_given) const {
  const std::vector<uint8_t> bytes = to_bytes();
  // Written to a new file that then replaces `path`: runtimes may be reading
  // the old file's weights in place (mapped), and must never see it change.
  // Through a symlink to the file it names; an existing file's mode is kept.
  std::string path = path_given;
  std::error_code ec;
  if (std::filesystem::is_symlink(path, ec)) {
    const auto target = std::filesystem::canonical(path, ec);
    if (!ec) path = target.string();
  }
  static std::atomic<unsigned> counter{0};
  const std::string tmp =
      path + ".tmp" + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
  auto fail = [&](const std::string& why) {
    std::remove(tmp.c_str());
    throw Error(ErrorKind::invalid_argument,
                "cannot write program file '" + path_given + "': " + why);
  };
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(std::strerror(errno));
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  struct stat old;
  if (ok && ::stat(path.c_str(), &old) == 0) ok = ::fchmod(::fileno(f), old.st_mode & 07777) == 0;
  if (std::fclose(f) != 0 || !ok) fail(std::strerror(errno));
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail(std::strerror(errno));
}

static TensorInfo info_of(const program::TensorDesc& d) { return {d.name, d.dtype, d.shape}; }

std::vector<TensorInfo> Program::inputs() const {
  std::vector<TensorInfo> v;
  for (int32_t t : data().inputs) v.push_back(info_of(data().tensors[size_t(t)]));
  return v;
}

int64_t Program::check_inputs(const std::vector<Tensor>& inputs) const {
  const auto infos = this->inputs();
  if (inputs.size() != infos.size())
    throw Error(ErrorKind::invalid_argument, "the model takes " + std::to_string(infos.size()) +
                                                 " input" + (infos.size() == 1 ? "" : "s") +
                                                 ", got " + std::to_string(inputs.size()));
  int64_t batch = -1;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    const TensorInfo& info = infos[i];
    if (t.dtype() != info.dtype)
      throw Error(ErrorKind::dtype, "input '" + info.name + "' must be " + dtype_name(info.dtype) +
                                        ", got " + dtype_name(t.dtype()));
    const Shape want = runtime::batched(info.shape, -1);
    bool ok = t.shape().size() == want.size() && t.shape()[0] >= 0;
    for (size_t d = 1; ok && d < want.size(); ++d) ok = t.shape()[d] == want[d];
    if (!ok) {
      std::string w = shape_str(want);
      w = "[N" + w.substr(3);  // "[-1,..." (replace() trips a GCC 12 -Wrestrict false positive)
      throw Error(ErrorKind::invalid_argument, "input '" + info.name + "' must have shape " + w +
                                                   " (N samples), got " + shape_str(t.shape()));
    }
    if (t.numel() != 0 && !t.data())
      throw Error(ErrorKind::invalid_argument, "input '" + info.name + "' of shape " +
                                                   shape_str(t.shape()) +
                                                   " has no data (a null pointer)");
    if (batch >= 0 && t.shape()[0] != batch)
      throw Error(ErrorKind::invalid_argument,
                  "all inputs must have the same batch size; input '" + info.name + "' has " +
                      std::to_string(t.shape()[0]) + ", earlier ones " + std::to_string(batch));
    batch = t.shape()[0];
  }
  return std::max<int64_t>(batch, 0);
}

std::vector<TensorInfo> Program::outputs() const {
  std::vector<TensorInfo> v;
  for (int32_t t : data().outputs) v.push_back(info_of(data().tensors[size_t(t)]));
  return v;
}

int64_t Program::output_size(size_t i) const {
  const auto& o = data().outputs;
  if (i >= o.size())
    throw Error(ErrorKind::invalid_argument, "output index " + std::to_string(i) +
                                                 " out of range (the model has " +
                                                 std::to_string(o.size()) + ")");
  return shape_numel(data().tensors[size_t(o[i])].shape);
}

int Program::devices() const { return data().devices; }
int Program::clusters() const { return data().clusters; }
Mode Program::mode() const { return data().mode; }
bool Program::split() const { return data().mode == Mode::split; }
uint64_t Program::arena_bytes() const { return data().arena_bytes; }
uint64_t Program::weight_bytes() const { return data().weights_bytes; }
size_t Program::num_instructions() const { return data().instructions.size(); }

std::string Program::describe() const {
  const auto& p = data();
  std::ostringstream o;
  auto tensor = [&](int32_t t) {
    if (t < 0) return std::string("-");
    const auto& d = p.tensors[size_t(t)];
    return d.name + shape_str(d.shape);
  };
  o << "program: " << (p.model_name.empty() ? "(unnamed model)" : p.model_name) << "\n"
    << "  produced by " << p.producer << ", format v" << p.version << ", target " << p.target
    << "\n  devices " << p.devices << " x clusters "
    << (p.clusters ? std::to_string(p.clusters) : std::string("one per core")) << " (mode "
    << mode_name(p.mode) << ")\n"
    << "  arena " << p.arena_bytes << " bytes per cluster, weights " << p.weights_bytes
    << " bytes\n";
  size_t packed = 0;
  uint64_t packed_bytes = 0;
  for (const auto& t : p.tensors)
    if (t.storage == program::Storage::weight && t.layout == program::Layout::packed) {
      ++packed;
      packed_bytes += t.bytes;
    }
  o << "  packed weights: " << packed << " tensors, " << packed_bytes
    << " bytes (stored in the CPU kernels' layouts)\n";
  double flops = 0;
  for (const auto& ins : p.instructions) flops += ins.flops;
  o << "  " << p.instructions.size() << " instructions, " << flops / 1e9 << " GFLOP per input\n";
  size_t bf16 = 0, int8 = 0;
  for (const auto& ins : p.instructions) {
    bf16 += ins.attrs.s("shoal_precision", "") == "bf16";
    int8 += ins.attrs.s("shoal_precision", "") == "int8";
  }
  o << "  precision:";
  if (bf16) o << " " << bf16 << " layers bf16 (bf16 inputs and weights, f32 accumulation),";
  if (int8) o << " " << int8 << " layers int8 (int8 inputs and weights, int32 accumulation),";
  o << (bf16 || int8 ? " the rest f32\n" : " f32\n");
  for (int32_t t : p.inputs) o << "  input  " << tensor(t) << "\n";
  for (int32_t t : p.outputs) o << "  output " << tensor(t) << "\n";
  o << "layers:\n";
  for (size_t i = 0; i < p.instructions.size(); ++i) {
    const auto& ins = p.instructions[i];
    o << "  " << i << ": " << ins.op << " '" << ins.name << "'";
    const std::string act = ins.attrs.has("activation") ? ins.attrs.s("activation", "") : "";
    if (!act.empty()) o << " +" << act;
    const std::string prec = ins.attrs.s("shoal_precision", "");
    if (!prec.empty()) o << " [" << prec << "]";
    o << "  (";
    for (size_t k = 0; k < ins.inputs.size(); ++k) o << (k ? ", " : "") << tensor(ins.inputs[k]);
    o << ") -> ";
    for (size_t k = 0; k < ins.outputs.size(); ++k) o << (k ? ", " : "") << tensor(ins.outputs[k]);
    o << "\n";
  }
  return o.str();
}

ProgramInfo Program::info() const {
  const auto& p = data();
  ProgramInfo info;
  info.model = p.model_name;
  info.producer = p.producer;
  info.target = p.target;
  info.format_version = p.version;
  info.layers.reserve(p.instructions.size());
  for (const auto& ins : p.instructions) {
    LayerInfo l;
    l.name = ins.name;
    l.op = ins.op;
    l.precision = ins.attrs.s("shoal_precision", "f32");
    l.flops = ins.flops;
    for (int32_t t : ins.inputs)
      l.inputs.push_back(t < 0 ? TensorInfo{"", DType::undefined, {}}
                               : info_of(p.tensors[size_t(t)]));
    for (int32_t t : ins.outputs) l.outputs.push_back(info_of(p.tensors[size_t(t)]));
    info.layers.push_back(std::move(l));
  }
  return info;
}

std::vector<std::string> Program::reference_layers(const std::string& kind) const {
  const device::Backend b = device::backend(kind);
  return b.reference_layers ? b.reference_layers(data()) : std::vector<std::string>{};
}

// --- Tensor ------------------------------------------------------------------

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  for (int64_t d : shape_)
    if (d < 0)
      throw Error(ErrorKind::invalid_argument, "negative dimension in " + shape_str(shape_));
  const size_t n = bytes();
  owner_ = std::shared_ptr<void>(std::calloc(std::max<size_t>(n, 1), 1), std::free);
  if (!owner_)
    throw Error(ErrorKind::out_of_memory, "cannot allocate " + std::to_string(n) + " bytes");
  data_ = owner_.get();
}

Tensor Tensor::view(const float* data, Shape shape) {
  return view(const_cast<float*>(data), DType::f32, std::move(shape));
}

Tensor Tensor::view(void* data, DType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  return t;
}

static runtime::Session& live(const std::unique_ptr<runtime::Session>& s) {
  if (!s) throw Error(ErrorKind::invalid_argument, "this Runtime was moved from");
  return *s;
}

// --- Runtime -----------------------------------------------------------------

Runtime::Runtime(const Program& program, const RuntimeOptions& options)
    : impl_(std::make_unique<runtime::Session>(program, options, read_settings())) {}
Runtime::~Runtime() = default;
Runtime::Runtime(Runtime&&) noexcept = default;
Runtime& Runtime::operator=(Runtime&&) noexcept = default;

std::vector<Tensor> Runtime::run(const std::vector<Tensor>& inputs) {
  return live(impl_).run(inputs);
}
bool Runtime::put(const std::vector<Tensor>& inputs, uint64_t tag, double timeout_ms) {
  return live(impl_).put(inputs, tag, timeout_ms);
}
bool Runtime::get(std::vector<Tensor>& outputs, uint64_t& tag, double timeout_ms) {
  return live(impl_).get(outputs, tag, timeout_ms);
}
size_t Runtime::queue_capacity() const { return live(impl_).queue_capacity(); }
void Runtime::set_queue_capacity(size_t c) { live(impl_).set_queue_capacity(c); }
size_t Runtime::pending() const { return live(impl_).pending(); }
void Runtime::close() { live(impl_).close(); }
const Program& Runtime::program() const { return live(impl_).program(); }
std::string Runtime::plan() const { return live(impl_).plan(); }
int Runtime::clusters() const { return live(impl_).clusters(); }
double Runtime::last_run_ms() const { return live(impl_).last_run_ms(); }
std::vector<LayerProfile> Runtime::profile() const { return live(impl_).profile(); }
void Runtime::reset_profile() { live(impl_).reset_profile(); }
std::vector<LayerOutputs> Runtime::run_layers(const std::vector<Tensor>& inputs) {
  return live(impl_).run_layers(inputs);
}

}  // namespace shoal
