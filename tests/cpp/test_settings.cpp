// Settings: every environment variable the library reads, read at the API
// (read_settings) and passed down; the API re-reads them at each call.
#include <gtest/gtest.h>

#include "core/settings.hpp"
#include "env_guard.hpp"
#include "shoal/shoal.hpp"

namespace shoal {
namespace {

using test_util::EnvGuard;

TEST(Settings, ParsedFromTheEnvironment) {
  EnvGuard w("SHOAL_WEIGHTS", "copy"), s("SHOAL_STACK_SPLIT", "3"), b("SHOAL_ROW_BANDS", "none"),
      r("SHOAL_REF_DEVICES", "2"), g("SHOAL_WINOGRAD", "all"), o("SHOAL_REFERENCE_ONLY", "1"),
      c("SHOAL_CPU_DEVICES", "1"), i("SHOAL_ISA", "generic");
  const Settings st = read_settings();
  EXPECT_EQ(st.weights, WeightPlacement::copy);
  EXPECT_EQ(st.stack_split, 3);
  EXPECT_EQ(st.row_bands, RowBands::none);
  EXPECT_EQ(st.ref_devices, 2);
  EXPECT_TRUE(st.winograd_all);
  EXPECT_TRUE(st.reference_only);
  EXPECT_EQ(st.cpu_devices, "1");
  EXPECT_EQ(st.isa, "generic");
  // The API reads them per call: devices() lists the two ref devices.
  int refs = 0;
  for (const DeviceInfo& d : devices()) refs += d.kind == "ref";
  EXPECT_EQ(refs, 2);
}

TEST(Settings, MalformedValuesNameTheVariable) {
  for (auto [name, value] : {std::pair{"SHOAL_WEIGHTS", "everywhere"},
                             {"SHOAL_STACK_SPLIT", "-1"},
                             {"SHOAL_ROW_BANDS", "some"},
                             {"SHOAL_REF_DEVICES", "100"}}) {
    EnvGuard e(name, value);
    try {
      read_settings();
      ADD_FAILURE() << name << "=" << value << " was accepted";
    } catch (const Error& err) {
      EXPECT_EQ(err.kind(), ErrorKind::invalid_argument);
      EXPECT_NE(std::string(err.what()).find(name), std::string::npos) << err.what();
    }
  }
}

}  // namespace
}  // namespace shoal
