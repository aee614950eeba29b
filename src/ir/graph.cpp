#include "ir/graph.hpp"

#include <unordered_map>

#include "shoal/error.hpp"

namespace shoal::ir {

int Graph::add_value(Value v) {
  values.push_back(std::move(v));
  return int(values.size()) - 1;
}

int Graph::find_value(const std::string& name) const {
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i].name == name) return int(i);
  return -1;
}

std::vector<int> Graph::producers() const {
  std::vector<int> p(values.size(), -1);
  for (size_t n = 0; n < nodes.size(); ++n) {
    if (nodes[n].dead) continue;
    for (int v : nodes[n].outputs)
      if (v >= 0) p[size_t(v)] = int(n);
  }
  return p;
}

std::vector<std::vector<int>> Graph::consumers() const {
  std::vector<std::vector<int>> c(values.size());
  for (size_t n = 0; n < nodes.size(); ++n) {
    if (nodes[n].dead) continue;
    for (int v : nodes[n].inputs)
      if (v >= 0) c[size_t(v)].push_back(int(n));
  }
  return c;
}

std::string Graph::describe(const Node& n) const {
  return n.op + " node '" + n.name + "'";
}

void Graph::sort() {
  std::vector<int> prod = producers();
  std::vector<char> avail(values.size(), 0);
  for (size_t v = 0; v < values.size(); ++v)
    if (prod[v] < 0) avail[v] = 1;  // graph inputs and constants
  for (size_t v = 0; v < values.size(); ++v)
    if (prod[v] < 0 && !values[v].is_const()) {
      bool is_input = false;
      for (int i : inputs) is_input |= (i == int(v));
      avail[v] = is_input;
    }
  std::vector<Node> sorted;
  std::vector<char> done(nodes.size(), 0);
  sorted.reserve(nodes.size());
  bool progress = true;
  while (progress) {
    progress = false;
    for (size_t n = 0; n < nodes.size(); ++n) {
      if (done[n] || nodes[n].dead) continue;
      bool ready = true;
      for (int v : nodes[n].inputs)
        if (v >= 0 && !avail[size_t(v)]) ready = false;
      if (!ready) continue;
      for (int v : nodes[n].outputs)
        if (v >= 0) avail[size_t(v)] = 1;
      done[n] = 1;
      sorted.push_back(nodes[n]);
      progress = true;
    }
  }
  for (size_t n = 0; n < nodes.size(); ++n) {
    if (done[n] || nodes[n].dead) continue;
    for (int v : nodes[n].inputs) {
      if (v < 0 || avail[size_t(v)]) continue;
      if (prod[size_t(v)] < 0)
        throw Error(ErrorKind::invalid_argument,
                    describe(nodes[n]) + " reads '" + values[size_t(v)].name +
                        "', which no node, input or initializer provides");
    }
    throw Error(ErrorKind::invalid_argument,
                "the graph has a cycle through " + describe(nodes[n]));
  }
  nodes = std::move(sorted);
}

void Graph::compact() {
  std::vector<Node> live;
  for (auto& n : nodes)
    if (!n.dead) live.push_back(std::move(n));
  nodes = std::move(live);
  std::vector<char> used(values.size(), 0);
  for (auto& n : nodes) {
    for (int v : n.inputs)
      if (v >= 0) used[size_t(v)] = 1;
    for (int v : n.outputs)
      if (v >= 0) used[size_t(v)] = 1;
  }
  for (int v : inputs) used[size_t(v)] = 1;
  for (int v : outputs) used[size_t(v)] = 1;
  std::vector<int> remap(values.size(), -1);
  std::vector<Value> kept;
  for (size_t v = 0; v < values.size(); ++v) {
    if (!used[v]) continue;
    remap[v] = int(kept.size());
    kept.push_back(std::move(values[v]));
  }
  values = std::move(kept);
  auto fix = [&](std::vector<int>& ids) {
    for (int& v : ids)
      if (v >= 0) v = remap[size_t(v)];
  };
  for (auto& n : nodes) {
    fix(n.inputs);
    fix(n.outputs);
  }
  fix(inputs);
  fix(outputs);
}

}  // namespace shoal::ir
