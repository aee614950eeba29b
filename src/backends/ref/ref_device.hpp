// The ref backend's address translation (ref_device.cpp), for its tests.
#pragma once

#include <cstdint>

namespace shoal::ref {

/// A ref device address is its buffer's host address plus this: never a
/// canonical address, so dereferencing it outside the backend faults.
inline constexpr uintptr_t kAddressBias = uintptr_t(1) << 62;

void* to_device(void* host);
void* to_host(const void* dev);

}  // namespace shoal::ref
