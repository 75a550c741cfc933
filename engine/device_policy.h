// When a background job may run: the device's state as the host app reports it (charging,
// battery, temperature, screen, idle) and a job's policy over it, with the phone-friendly
// defaults (charging or battery >= 50%, not hot, screen off).
#pragma once
#include <filesystem>
#include <string>

#include "core/json.h"

namespace hearth::engine {

struct DeviceState {
  bool charging = true;
  int battery_percent = 100;     // 0..100
  double temperature_c = 30.0;   // battery / skin temperature
  bool screen_on = false;
  bool idle = true;              // no user interaction lately

  Json to_json() const;
  // Strict: unknown fields, wrong types and out-of-range values are kInvalidArgument naming
  // `what` and the field. Missing fields keep the defaults above.
  static DeviceState from_json(const Json& j, const std::string& what);
};

// Reads the JSON state file a host (or a test) keeps up to date; kNotFound / kCorruptFile /
// kInvalidArgument naming the file.
DeviceState read_device_state(const std::filesystem::path& path);

struct JobPolicy {
  bool run_on_battery = true;    // false: only while charging
  int min_battery_percent = 50;  // on battery, only at or above this level
  double max_temperature_c = 40.0;
  bool require_screen_off = true;
  bool require_idle = false;

  // "" when `state` allows running; otherwise why not, in words ("battery at 31% (< 50%)").
  std::string refusal(const DeviceState& state) const;
  Json to_json() const;
  static JobPolicy from_json(const Json& j, const std::string& what);
};

}  // namespace hearth::engine
