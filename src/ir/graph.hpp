// The compiler's intermediate representation: a dataflow graph of nodes over
// values, in topological order. Every value has a static dtype and shape once
// shape inference ran; constant values carry their data.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/attrs.hpp"
#include "core/tensor.hpp"

namespace shoal::ir {

struct Value {
  std::string name;
  DType dtype = DType::undefined;
  Shape shape;
  bool shape_known = false;
  std::optional<HostTensor> constant;  // set for initializers and folded values
  bool channels_last = false;  // stored NHWC at run time (assign_layouts)
  bool is_const() const { return constant.has_value(); }
};

struct Node {
  std::string name;  // unique; generated when the model has none
  std::string op;    // op type, e.g. "Conv"
  std::string domain;
  std::vector<int> inputs;   // value ids; -1 = absent optional input
  std::vector<int> outputs;  // value ids; -1 = absent optional output
  Attrs attrs;
  bool dead = false;
};

class Graph {
 public:
  std::vector<Value> values;
  std::vector<Node> nodes;  // topological order (after sort())
  std::vector<int> inputs;  // graph inputs (non-constant values)
  std::vector<int> outputs;
  int opset = 0;

  int add_value(Value v);
  int find_value(const std::string& name) const;  // -1 if none
  /// Drops dead nodes and values no node or output references; renumbers.
  void compact();
  /// Sorts nodes topologically; throws Error naming a node on a cycle or a
  /// node reading a value that nothing produces.
  void sort();
  /// producer[v] = node index producing value v, or -1.
  std::vector<int> producers() const;
  /// consumers[v] = node indices reading value v.
  std::vector<std::vector<int>> consumers() const;
  std::string describe(const Node& n) const;  // "Conv 'conv1' (opset 13)"
};

}  // namespace shoal::ir
