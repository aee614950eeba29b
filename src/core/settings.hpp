// Every environment variable the library reads, read at the API (Runtime,
// devices(), find_device(), compile(), quantize()) by read_settings() into one struct that
// is passed down: nothing below the API calls getenv. docs/ENVIRONMENT.md
// lists them (keep the two in step).
#pragma once

#include <cstdint>
#include <string>

#include "shoal/shoal.hpp"

namespace shoal {

/// SHOAL_ROW_BANDS: cut one-sample convolutions of a team into bands of rows
/// where it pays (automatic), everywhere it can (all, for tests) or nowhere.
enum class RowBands : uint8_t { automatic, all, none };

struct Settings {
  // --- runtime ---------------------------------------------------------------
  /// SHOAL_WEIGHTS=copy|shared|auto: overrides RuntimeOptions::weights when
  /// that is automatic.
  WeightPlacement weights = WeightPlacement::automatic;
  /// SHOAL_STACK_SPLIT=k: the first k instructions of a stack run a sample
  /// at a time, not timed (-1: timed and chosen).
  int64_t stack_split = -1;
  /// SHOAL_DEBUG_STACK (set): report each stack's chosen split on stderr.
  bool debug_stack = false;
  // --- backends --------------------------------------------------------------
  /// SHOAL_CPU_DEVICES: "n" devices or core ranges "0-7,8-15" ("": one per
  /// NUMA node); parsed by the cpu backend, which knows the cores.
  std::string cpu_devices;
  /// SHOAL_ISA=generic|avx2|avx512: the native loops' instruction set ("":
  /// the best this CPU runs).
  std::string isa;
  /// SHOAL_REFERENCE_ONLY (set): the cpu backend runs every layer on the
  /// reference kernels.
  bool reference_only = false;
  RowBands row_bands = RowBands::automatic;  ///< SHOAL_ROW_BANDS=all|none
  int ref_devices = 1;                       ///< SHOAL_REF_DEVICES=n (0 to 99)
  // --- compiler --------------------------------------------------------------
  /// SHOAL_PYTHON: the interpreter quantize() runs the Python quantizer with
  /// ("": /usr/bin/python3).
  std::string python;
  /// SHOAL_WINOGRAD=all: Winograd wherever oneDNN has it, not only where it
  /// pays (tests of the Winograd path on small models).
  bool winograd_all = false;
};

/// The settings the environment gives (defaults for unset variables).
/// Throws Error(invalid_argument) naming a variable whose value is malformed.
Settings read_settings();

}  // namespace shoal
