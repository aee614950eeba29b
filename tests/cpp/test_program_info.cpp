// Program::info() and Program::reference_layers(): what the command line
// needs to describe a program, from the public API alone.
#include <gtest/gtest.h>

#include "shoal/shoal.hpp"

namespace shoal {
namespace {

TEST(ProgramInfo, LayersTargetAndReferenceLayers) {
  const Program p = compile(std::string(SHOAL_SOURCE_DIR) + "/models/digits/digits_cnn.onnx");
  const ProgramInfo info = p.info();
  EXPECT_EQ(info.target, "cpu");
  EXPECT_EQ(info.producer, std::string("shoal ") + version());
  EXPECT_GE(info.format_version, 2u);
  ASSERT_EQ(info.layers.size(), p.num_instructions());
  double flops = 0;
  int convs = 0;
  for (const LayerInfo& l : info.layers) {
    EXPECT_FALSE(l.name.empty());
    EXPECT_EQ(l.precision, "f32");
    EXPECT_FALSE(l.outputs.empty());
    flops += l.flops;
    if (l.op == "Conv") {
      ++convs;
      ASSERT_GE(l.inputs.size(), 2u);
      EXPECT_EQ(l.inputs[0].shape.size(), 4u);  // the activation, NCHW
    }
  }
  EXPECT_EQ(convs, 3);
  EXPECT_GT(flops, 0);
  EXPECT_EQ(info.layers.back().outputs[0].shape, (Shape{1, 10}));
  // Every layer of the digits CNN has a fast cpu kernel; the ref backend
  // tells no fast from slow; an unknown backend is an error.
  EXPECT_TRUE(p.reference_layers("cpu").empty());
  EXPECT_TRUE(p.reference_layers("ref").empty());
  EXPECT_THROW(p.reference_layers("gpu"), Error);
  EXPECT_THROW(Program().info(), Error);
}

}  // namespace
}  // namespace shoal
