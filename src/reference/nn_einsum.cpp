// Einsum (opset 12): the equation parser and resolver (einsum.hpp), shape
// inference and the reference kernel: any number of operands, implicit and
// explicit outputs, "..." with broadcasting, repeated letters (diagonals)
// and letters summed away. Two-operand Einsums that are matrix products run
// as MatMul instead (src/passes/einsum.cpp).
#include <algorithm>
#include <cctype>

#include "reference/einsum.hpp"
#include "reference/nn_internal.hpp"

namespace shoal::ref {
namespace {

[[noreturn]] void bad(const std::string& equation, const std::string& message) {
  fail(ErrorKind::invalid_argument, "Einsum: equation '" + equation + "': " + message);
}

bool is_letter(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string term_str(const EinsumTerm& t) {
  std::string s;
  for (int c : t) s += c == kEllipsis ? std::string("...") : std::string(1, char(c));
  return s;
}

EinsumTerm parse_term(const std::string& eq, const std::string& text, const std::string& what) {
  EinsumTerm t;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '.') {
      if (text.compare(i, 3, "...") != 0)
        bad(eq, what + " '" + text + "' has a '.' that is not part of '...'");
      if (std::count(t.begin(), t.end(), kEllipsis))
        bad(eq, what + " '" + text + "' has more than one '...'");
      t.push_back(kEllipsis);
      i += 3;
    } else if (is_letter(c)) {
      t.push_back(c);
      ++i;
    } else {
      bad(eq, what + " '" + text + "' has the character '" + std::string(1, c) +
                  "' (terms hold letters a-z, A-Z and '...')");
    }
  }
  return t;
}

bool has_ellipsis(const EinsumTerm& t) {
  return std::find(t.begin(), t.end(), kEllipsis) != t.end();
}

}  // namespace

EinsumEquation parse_einsum(const std::string& equation, size_t num_inputs) {
  EinsumEquation eq;
  eq.text = equation;
  std::string s;
  for (char c : equation)
    if (!std::isspace(static_cast<unsigned char>(c))) s += c;
  const size_t arrow = s.find("->");
  eq.explicit_output = arrow != std::string::npos;
  const std::string lhs = s.substr(0, arrow);
  const std::string rhs = eq.explicit_output ? s.substr(arrow + 2) : std::string();
  if (rhs.find("->") != std::string::npos) bad(equation, "has more than one '->'");
  std::vector<std::string> terms(1);
  for (char c : lhs) {
    if (c == ',')
      terms.emplace_back();
    else
      terms.back() += c;
  }
  if (terms.size() != num_inputs)
    bad(equation, "has " + std::to_string(terms.size()) + " input term" +
                      (terms.size() == 1 ? "" : "s") + ", but the node has " +
                      std::to_string(num_inputs) + " input" + (num_inputs == 1 ? "" : "s"));
  for (size_t k = 0; k < terms.size(); ++k)
    eq.inputs.push_back(parse_term(equation, terms[k], "input term " + std::to_string(k)));
  int count[128] = {};
  bool any_ellipsis = false;
  for (const EinsumTerm& t : eq.inputs)
    for (int c : t) {
      if (c == kEllipsis)
        any_ellipsis = true;
      else
        ++count[c];
    }
  if (eq.explicit_output) {
    eq.output = parse_term(equation, rhs, "the output term");
    int seen[128] = {};
    for (int c : eq.output) {
      if (c == kEllipsis) continue;
      if (seen[c]++)
        bad(equation, "letter '" + std::string(1, char(c)) + "' appears twice in the output");
      if (!count[c])
        bad(equation, "output letter '" + std::string(1, char(c)) + "' appears in no input");
    }
  } else {
    if (any_ellipsis) eq.output.push_back(kEllipsis);
    for (int c = 0; c < 128; ++c)
      if (count[c] == 1) eq.output.push_back(c);
  }
  return eq;
}

Shape EinsumDims::output_shape() const {
  Shape s;
  for (int l : output) s.push_back(sizes[size_t(l)]);
  return s;
}

std::string EinsumDims::label_name(int label) const {
  const int c = letters[size_t(label)];
  return c == kEllipsis ? "...[" + std::to_string(label) + "]" : std::string(1, char(c));
}

EinsumDims resolve_einsum(const EinsumEquation& eq, std::span<const Shape> shapes) {
  const std::string& text = eq.text;
  if (shapes.size() != eq.inputs.size())
    fail(ErrorKind::internal, "Einsum: " + std::to_string(shapes.size()) +
                                  " operands for an equation of " +
                                  std::to_string(eq.inputs.size()) + " terms");
  EinsumDims d;
  // Dims each operand's "..." stands for.
  std::vector<int> ell(shapes.size(), 0);
  for (size_t k = 0; k < shapes.size(); ++k) {
    const EinsumTerm& t = eq.inputs[k];
    const int letters = int(t.size()) - (has_ellipsis(t) ? 1 : 0);
    const int rank = int(shapes[k].size());
    const std::string term = "input term " + std::to_string(k) + " '" + term_str(t) + "'";
    if (has_ellipsis(t) ? rank < letters : rank != letters)
      bad(text, term + " names " + std::to_string(letters) + " dim" + (letters == 1 ? "" : "s") +
                    (has_ellipsis(t) ? " besides '...'" : "") + ", but input " + std::to_string(k) +
                    " has shape " + shape_str(shapes[k]) + " (rank " + std::to_string(rank) + ")");
    ell[k] = rank - letters;
    d.ellipsis_rank = std::max(d.ellipsis_rank, ell[k]);
  }
  const int E = d.ellipsis_rank;
  d.sizes.assign(size_t(E), 1);
  d.letters.assign(size_t(E), kEllipsis);
  int label_of[128];
  std::fill(std::begin(label_of), std::end(label_of), -1);
  std::vector<size_t> first_input;  // per letter label: the operand that set its size
  for (size_t k = 0; k < shapes.size(); ++k) {
    std::vector<int> labels;
    const Shape& s = shapes[k];
    size_t dim = 0;
    for (int c : eq.inputs[k]) {
      if (c == kEllipsis) {
        for (int j = 0; j < ell[k]; ++j, ++dim) {
          const int l = E - ell[k] + j;
          int64_t& size = d.sizes[size_t(l)];
          if (s[dim] != 1 && size != 1 && s[dim] != size)
            bad(text, "the dims of '...' do not broadcast: input " + std::to_string(k) +
                          " has shape " + shape_str(s) + ", another input has size " +
                          std::to_string(size) + " where it has " + std::to_string(s[dim]));
          if (s[dim] != 1) size = s[dim];
          labels.push_back(l);
        }
        continue;
      }
      int& l = label_of[c];
      if (l < 0) {
        l = int(d.sizes.size());
        d.sizes.push_back(s[dim]);
        d.letters.push_back(c);
        first_input.push_back(k);
      } else if (d.sizes[size_t(l)] != s[dim]) {
        bad(text, "letter '" + std::string(1, char(c)) + "' has size " +
                      std::to_string(d.sizes[size_t(l)]) + " in input " +
                      std::to_string(first_input[size_t(l - E)]) + " but size " +
                      std::to_string(s[dim]) + " in input " + std::to_string(k) + " (shape " +
                      shape_str(s) + ")");
      }
      labels.push_back(l);
      ++dim;
    }
    d.inputs.push_back(std::move(labels));
  }
  if (E > 0 && !has_ellipsis(eq.output))
    bad(text, "the inputs have " + std::to_string(E) + " dim" + (E == 1 ? "" : "s") +
                  " under '...', but the output term '" + term_str(eq.output) +
                  "' has no '...' to keep them");
  for (int c : eq.output) {
    if (c == kEllipsis) {
      for (int l = 0; l < E; ++l) d.output.push_back(l);
    } else {
      d.output.push_back(label_of[c]);
    }
  }
  return d;
}

namespace nn {
namespace {

const std::vector<DType> kEinsumDTypes = {DType::f32, DType::f64, DType::i64, DType::i32};

EinsumDims resolve(const Attrs& a, std::span<const Shape> shapes) {
  if (!a.has("equation")) fail(ErrorKind::invalid_argument, "Einsum: missing attribute 'equation'");
  return resolve_einsum(parse_einsum(a.s("equation", ""), shapes.size()), shapes);
}

std::vector<TypeShape> einsum_infer(const Attrs& a, Infos in) {
  std::vector<Shape> shapes;
  for (size_t k = 0; k < in.size(); ++k) {
    const ValueInfo& v = need(in, k, "Einsum", "Inputs");
    check_dtype("Einsum", "input " + std::to_string(k), v.dtype, kEinsumDTypes);
    if (v.dtype != in[0].dtype)
      fail(ErrorKind::invalid_argument, "Einsum: input " + std::to_string(k) + " is " +
                                            dtype_name(v.dtype) + " but input 0 is " +
                                            dtype_name(in[0].dtype));
    shapes.push_back(v.shape);
  }
  return {{in[0].dtype, resolve(a, shapes).output_shape()}};
}

/// y[out labels] = sum over the other labels of the product of the inputs.
/// A label's stride in an operand is the sum of the strides of the dims it
/// labels (a repeated letter walks the diagonal), 0 where a "..." dim of
/// size 1 broadcasts. Acc: double for floats; integers wrap (uint64_t).
template <class T, class Acc>
void einsum_kernel(const EinsumDims& d, Refs in, const TensorRef& out) {
  const size_t n = in.size(), labels = d.sizes.size();
  std::vector<std::vector<int64_t>> stride(n, std::vector<int64_t>(labels, 0));
  for (size_t k = 0; k < n; ++k) {
    const Shape& s = in[k].shape;
    const Shape st = strides_of(s);
    for (size_t j = 0; j < s.size(); ++j)
      if (s[j] != 1) stride[k][size_t(d.inputs[k][j])] += st[j];
  }
  std::vector<bool> kept(labels, false);
  for (int l : d.output) kept[size_t(l)] = true;
  std::vector<int> summed;
  for (size_t l = 0; l < labels; ++l)
    if (!kept[l]) summed.push_back(int(l));
  // Per operand, its stride along each output dim, then each summed label.
  auto strides_along = [&](const std::vector<int>& ls) {
    std::vector<std::vector<int64_t>> s(n);
    for (size_t k = 0; k < n; ++k)
      for (int l : ls) s[k].push_back(stride[k][size_t(l)]);
    return s;
  };
  const auto ost = strides_along(d.output), sst = strides_along(summed);
  Shape osize, ssize;
  for (int l : d.output) osize.push_back(d.sizes[size_t(l)]);
  for (int l : summed) ssize.push_back(d.sizes[size_t(l)]);
  const int64_t n_out = shape_numel(osize), n_sum = shape_numel(ssize);
  std::vector<const T*> x(n);
  for (size_t k = 0; k < n; ++k) x[k] = in[k].as<const T>();
  T* y = out.as<T>();
  // Odometers over the output dims and, inside, the summed labels, each
  // carrying the operands' offsets.
  std::vector<int64_t> base(n, 0), off(n), opos(osize.size(), 0), spos(ssize.size(), 0);
  auto step = [&](Shape& pos, const Shape& size, const std::vector<std::vector<int64_t>>& st,
                  std::vector<int64_t>& offs) {
    for (size_t i = pos.size(); i-- > 0;) {
      for (size_t k = 0; k < n; ++k) offs[k] += st[k][i];
      if (++pos[i] < size[i]) return;
      for (size_t k = 0; k < n; ++k) offs[k] -= st[k][i] * size[i];
      pos[i] = 0;
    }
  };
  for (int64_t o = 0; o < n_out; ++o) {
    Acc acc = 0;
    off = base;
    std::fill(spos.begin(), spos.end(), 0);
    for (int64_t s = 0; s < n_sum; ++s) {
      Acc p = 1;
      for (size_t k = 0; k < n; ++k) p *= Acc(x[k][off[k]]);
      acc += p;
      step(spos, ssize, sst, off);
    }
    if constexpr (std::is_floating_point_v<T>)
      y[o] = T(acc);
    else
      y[o] = T(int64_t(acc));
    step(opos, osize, ost, base);
  }
}

void einsum_ref(const Attrs& a, Refs in, Refs out) {
  std::vector<Shape> shapes;
  for (const TensorRef& t : in) shapes.push_back(t.shape);
  const EinsumDims d = resolve(a, shapes);
  if (out[0].shape != d.output_shape() || out[0].dtype != in[0].dtype)
    fail(ErrorKind::internal, "Einsum: reference kernel got output " + shape_str(out[0].shape) +
                                  " " + dtype_name(out[0].dtype) + ", expected " +
                                  shape_str(d.output_shape()) + " " + dtype_name(in[0].dtype));
  switch (in[0].dtype) {
    case DType::f32:
      return einsum_kernel<float, double>(d, in, out[0]);
    case DType::f64:
      return einsum_kernel<double, double>(d, in, out[0]);
    case DType::i64:
      return einsum_kernel<int64_t, uint64_t>(d, in, out[0]);
    case DType::i32:
      return einsum_kernel<int32_t, uint64_t>(d, in, out[0]);
    default:
      fail(ErrorKind::unsupported, std::string("Einsum: element type ") + dtype_name(in[0].dtype));
  }
}

}  // namespace

void add_einsum_ops(std::vector<OpSpec>& t) {
  t.push_back(make_spec("Einsum", 12, 1, 1 << 16,
                        "Einstein summation: explicit and implicit outputs, '...' broadcast, "
                        "repeated letters (diagonals); two-operand matrix products run as MatMul",
                        einsum_infer, einsum_ref, {DType::f32, DType::i64}));
}

}  // namespace nn
}  // namespace shoal::ref
