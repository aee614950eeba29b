#include "runtime/executor.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "runtime/batching.hpp"
#include "runtime/finite.hpp"

namespace shoal::runtime {
namespace {

constexpr int kStackedTuningRuns = 2;  // then one run a sample at a time

double now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct Executor::Stack {
  int64_t n = 1;
  program::ProgramData view;  // the program for n samples (kernels read it)
  uint64_t base = 0;          // where its arena starts in the executor's
  // Instructions [0, split) run a sample at a time, each sample through all
  // of them (its working set stays in cache), on the one-sample stack's
  // arena; `carry` then lists the tensors later instructions read, copied
  // into the sample's slice of this stack. [split, end) run stacked.
  size_t split = 0;
  std::vector<int32_t> carry;
  std::vector<std::unique_ptr<Kernel>> kernels;  // null for [0, split)
  std::vector<std::vector<void*>> ins, outs;
  // Until tuned: the fastest time seen per instruction, stacked and (per
  // sample) one at a time, and how many runs were measured.
  bool tuned = false;
  int tuning_runs = 0;
  std::vector<double> stacked_ms, single_ms;
};

Executor::Executor(Device& device, int cluster, const program::ProgramData& view, int64_t max_stack,
                   const Settings& settings)
    : device_(device),
      cluster_(cluster),
      view_(view),
      max_stack_(std::max<int64_t>(1, max_stack)),
      stack_split_(settings.stack_split),
      debug_stack_(settings.debug_stack),
      stacks_(size_t(max_stack_) + 1),
      seen_(size_t(max_stack_) + 1, false),
      ms_(new std::atomic<double>[view.instructions.size()]),
      samples_(new std::atomic<int64_t>[view.instructions.size()]),
      count_(view.instructions.size()) {
  reset_profile();
}

Executor::~Executor() {
  stacks_.clear();  // kernels before the arena they point into
  if (arena_) device_.free(arena_);
}

void Executor::init(ExecContext& ctx) {
  stack(ctx, 1);
  device_.synchronize(ctx);
}

void* Executor::address(const Stack& s, int32_t t, int64_t sample) const {
  if (t < 0) return nullptr;
  const auto& d = s.view.tensors[size_t(t)];
  if (d.storage == program::Storage::weight) return const_cast<uint8_t*>(s.view.weights) + d.offset;
  const uint64_t per = uint64_t(shape_numel(d.shape) / s.n) * dtype_size(d.dtype);
  return arena_ + s.base + d.offset + uint64_t(sample) * per;
}

void Executor::bind(Stack& s) {
  const size_t count = s.view.instructions.size();
  s.ins.assign(count, {});
  s.outs.assign(count, {});
  for (size_t i = 0; i < count; ++i) {
    const program::Instruction& ins = s.view.instructions[i];
    for (int32_t t : ins.inputs) s.ins[i].push_back(address(s, t, 0));
    for (int32_t t : ins.outputs) s.outs[i].push_back(address(s, t, 0));
  }
}

void Executor::set_split(Stack& s, size_t split) {
  s.split = split;
  // What the stacked part reads of what the one-sample part wrote (or of
  // the inputs): carried over, a sample at a time.
  s.carry.clear();
  std::vector<bool> written(s.view.tensors.size(), false), carried = written;
  for (int32_t t : s.view.inputs) written[size_t(t)] = true;
  for (size_t i = 0; i < split; ++i)
    for (int32_t t : s.view.instructions[i].outputs)
      if (t >= 0) written[size_t(t)] = true;
  auto need = [&](int32_t t) {
    if (t >= 0 && written[size_t(t)] && !carried[size_t(t)] &&
        s.view.tensors[size_t(t)].storage == program::Storage::activation) {
      carried[size_t(t)] = true;
      s.carry.push_back(t);
    }
  };
  for (size_t i = split; i < s.kernels.size(); ++i)
    for (int32_t t : s.view.instructions[i].inputs) need(t);
  for (int32_t t : s.view.outputs) need(t);
}

void Executor::tune(Stack& s, const std::vector<double>& times) {
  // Stacking reuses weights across samples and gives the kernels larger
  // matrices, but multiplies the working set: layers with large maps (early
  // in a CNN) run faster a sample at a time, with each sample's data staying
  // in cache from one layer to the next. The stack's first runs measure both
  // per instruction, on the real work (no extra passes): two stacked (the
  // first one warms up), then one a sample at a time.
  const size_t count = s.kernels.size();
  const bool stacked = s.tuning_runs < kStackedTuningRuns;
  std::vector<double>& best = stacked ? s.stacked_ms : s.single_ms;
  for (size_t i = 0; i < count; ++i) best[i] = std::min(best[i], times[i]);
  ++s.tuning_runs;
  if (s.tuning_runs < kStackedTuningRuns) return;
  if (s.tuning_runs == kStackedTuningRuns) {
    set_split(s, count);  // next: a sample at a time throughout
    return;
  }
  // Cost of a split at k: the first k a sample at a time, the rest stacked.
  double cost = 0;
  for (size_t i = 0; i < count; ++i) cost += s.stacked_ms[i];
  double lowest = cost;
  size_t split = 0;
  for (size_t k = 1; k <= count; ++k) {
    cost += double(s.n) * s.single_ms[k - 1] - s.stacked_ms[k - 1];
    if (cost < lowest) {
      lowest = cost;
      split = k;
    }
  }
  if (debug_stack_)
    std::fprintf(stderr,
                 "shoal: stack of %lld on cluster %d: the first %zu of %zu "
                 "instructions a sample at a time (estimated %.3f ms)\n",
                 static_cast<long long>(s.n), cluster_, split, count, lowest);
  settle(s, split);
}

void Executor::settle(Stack& s, size_t split) {
  set_split(s, split);
  for (size_t i = 0; i < split; ++i) s.kernels[i].reset();  // those run a sample at a time
  s.tuned = true;
}

Executor::Stack& Executor::stack(ExecContext& ctx, int64_t n) {
  if (stacks_[size_t(n)]) return *stacks_[size_t(n)];
  auto s = std::make_unique<Stack>();
  s->n = n;
  s->view = view_;
  if (n > 1) {
    stack_samples(s->view, n);
    // After the one-sample arena, which the one-sample part keeps using.
    s->base = (view_.arena_bytes + 63) / 64 * 64;
  }
  const uint64_t need = s->base + s->view.arena_bytes;
  if (need > arena_bytes_ || !arena_) {  // grow it, rebind the others
    uint8_t* grown = static_cast<uint8_t*>(device_.allocate(need));
    device_.fill(ctx, grown, 0, need);
    if (arena_) {
      device_.synchronize(ctx);  // nothing in flight reads the old arena
      device_.free(arena_);
    }
    arena_ = grown;
    arena_bytes_ = need;
    for (auto& other : stacks_)
      if (other) bind(*other);
  }
  for (const auto& ins : s->view.instructions)
    s->kernels.push_back(device_.make_kernel(ins, s->view, cluster_));
  bind(*s);
  if (n == 1) {
    s->tuned = true;
  } else if (stack_split_ >= 0) {  // tests, experiments
    settle(*s, std::min(s->kernels.size(), size_t(stack_split_)));
  } else {
    s->stacked_ms.assign(s->kernels.size(), 1e300);
    s->single_ms.assign(s->kernels.size(), 1e300);
  }
  stacks_[size_t(n)] = std::move(s);
  return *stacks_[size_t(n)];
}

int64_t Executor::run(ExecContext& ctx, const std::vector<Tensor>& inputs,
                      std::vector<Tensor>& outputs, int64_t first, int64_t m, bool profile,
                      bool finite) {
  m = std::min(m, max_stack_);
  // A stack size seen for the first time runs a sample at a time: making its
  // kernels and timing its split cost more than the run it would serve (the
  // first result of SqueezeNet at batch 8 took 44 ms against 13 for the runs
  // after it). The stack is made when the size comes again.
  if (m > 1 && !stacks_[size_t(m)] && !seen_[size_t(m)]) {
    seen_[size_t(m)] = true;
    for (int64_t j = 0; j < m; ++j) run(ctx, inputs, outputs, first + j, 1, profile, finite);
    return m;
  }
  Stack* s = nullptr;
  if (m > 1) {
    try {
      s = &stack(ctx, m);
    } catch (const std::exception&) {
      // No kernels for this stack (a backend refused the shapes, or memory
      // ran out): one sample at a time from now on.
      max_stack_ = 1;
      m = 1;
    }
  }
  if (!s) s = &stack(ctx, 1);
  const program::ProgramData& v = s->view;
  std::vector<double> tuning;  // per instruction, while the stack is tuned
  if (!s->tuned) tuning.assign(s->kernels.size(), 1e300);
  auto timed = [&](size_t i, Kernel& k, std::span<void* const> in, std::span<void* const> out,
                   int64_t samples) {
    if (!profile && tuning.empty()) return k.execute(ctx, in, out);
    const double t0 = now_ms();
    k.execute(ctx, in, out);
    device_.synchronize(ctx);  // an asynchronous device's kernel has finished
    const double ms = now_ms() - t0;
    if (!tuning.empty()) tuning[i] = std::min(tuning[i], ms);
    if (!profile) return;
    // One writer (this cluster): load + store, no read-modify-write needed.
    ms_[i].store(ms_[i].load(std::memory_order_relaxed) + ms, std::memory_order_relaxed);
    samples_[i].store(samples_[i].load(std::memory_order_relaxed) + samples,
                      std::memory_order_relaxed);
  };
  auto copy_inputs = [&](const Stack& to, int64_t j0, int64_t count) {
    for (size_t k = 0; k < v.inputs.size(); ++k) {
      const auto& d = view_.tensors[size_t(v.inputs[k])];  // one sample's
      if (d.bytes)  // an empty tensor may have no buffer at all
        device_.copy_in(
            ctx, address(to, v.inputs[k], 0),
            static_cast<const uint8_t*>(inputs[k].data()) + size_t(first + j0) * d.bytes,
            size_t(count) * d.bytes);
    }
  };
  // NaN or Inf in these samples' float inputs: kernels keep ONNX's NaN
  // semantics on their slower paths (ExecContext::nonfinite). Inputs the
  // session already checked are finite: one scan either way.
  ctx.nonfinite = false;
  for (size_t k = 0; !finite && k < v.inputs.size() && !ctx.nonfinite; ++k) {
    const auto& d = view_.tensors[size_t(v.inputs[k])];
    if (d.dtype != DType::f32 || !d.bytes) continue;
    const int64_t per = int64_t(d.bytes / sizeof(float));
    ctx.nonfinite =
        first_nonfinite(static_cast<const float*>(inputs[k].data()) + first * per, m * per) >= 0;
  }
  if (s->split == 0) {
    copy_inputs(*s, 0, m);
  } else {
    Stack& one = *stacks_[1];
    for (int64_t j = 0; j < m; ++j) {  // the one-sample part, sample by sample
      copy_inputs(one, j, 1);
      for (size_t i = 0; i < s->split; ++i) timed(i, *one.kernels[i], one.ins[i], one.outs[i], 1);
      for (int32_t t : s->carry) {
        const auto& d = view_.tensors[size_t(t)];
        device_.copy(ctx, address(*s, t, j), address(one, t, 0), d.bytes);
      }
    }
  }
  for (size_t i = s->split; i < s->kernels.size(); ++i)
    timed(i, *s->kernels[i], s->ins[i], s->outs[i], m);
  if (!s->tuned) tune(*s, tuning);
  for (size_t k = 0; k < v.outputs.size(); ++k) {
    const auto& d = v.tensors[size_t(v.outputs[k])];
    uint8_t* dst = static_cast<uint8_t*>(outputs[k].data());
    if (d.storage == program::Storage::activation) {
      const size_t per = d.bytes / size_t(m);
      if (d.bytes)
        device_.copy_out(ctx, dst + size_t(first) * per, address(*s, v.outputs[k], 0), d.bytes);
    } else {  // a constant output: the same bytes for every sample
      for (int64_t j = 0; j < m && d.bytes; ++j)
        device_.copy_out(ctx, dst + size_t(first + j) * d.bytes, v.weights + d.offset, d.bytes);
    }
  }
  device_.synchronize(ctx);  // the outputs are in host memory, the inputs may be reused
  return m;
}

void Executor::run_layers(ExecContext& ctx, const std::vector<Tensor>& inputs,
                          std::vector<std::vector<Tensor>>& outputs) {
  Stack& s = stack(ctx, 1);
  const program::ProgramData& v = s.view;
  ctx.nonfinite = false;
  for (size_t k = 0; k < v.inputs.size(); ++k) {
    const auto& d = v.tensors[size_t(v.inputs[k])];
    if (!d.bytes) continue;
    device_.copy_in(ctx, address(s, v.inputs[k], 0), inputs[k].data(), d.bytes);
    if (d.dtype == DType::f32)
      ctx.nonfinite = ctx.nonfinite || first_nonfinite(static_cast<const float*>(inputs[k].data()),
                                                       int64_t(d.bytes / sizeof(float))) >= 0;
  }
  outputs.assign(v.instructions.size(), {});
  for (size_t i = 0; i < v.instructions.size(); ++i) {
    s.kernels[i]->execute(ctx, s.ins[i], s.outs[i]);
    const program::Instruction& ins = v.instructions[i];
    for (size_t o = 0; o < ins.outputs.size(); ++o) {
      if (ins.outputs[o] < 0) {
        outputs[i].emplace_back();
        continue;
      }
      const auto& d = v.tensors[size_t(ins.outputs[o])];
      Tensor t(d.dtype, d.shape);
      if (t.bytes())
        device_.copy_out(ctx, t.data(), s.outs[i][o], std::min<size_t>(t.bytes(), d.bytes));
      outputs[i].push_back(std::move(t));
    }
  }
  device_.synchronize(ctx);
}

std::string Executor::impl(size_t instruction) const {
  return stacks_[1] ? stacks_[1]->kernels[instruction]->impl() : "";
}

std::string Executor::precision(size_t instruction) const {
  return stacks_[1] ? stacks_[1]->kernels[instruction]->precision() : "";
}

void Executor::reset_profile() {
  for (size_t i = 0; i < count_; ++i) {
    ms_[i].store(0.0, std::memory_order_relaxed);
    samples_[i].store(0, std::memory_order_relaxed);
  }
}

}  // namespace shoal::runtime
