#include "engine/device_policy.h"

#include "core/error.h"
#include "core/json_fields.h"

namespace hearth::engine {

Json DeviceState::to_json() const {
  return Json{{"charging", charging}, {"battery_percent", battery_percent}, {"temperature_c", temperature_c},
              {"screen_on", screen_on}, {"idle", idle}};
}

DeviceState DeviceState::from_json(const Json& j, const std::string& what) {
  JsonFields f(j, what);
  DeviceState s;
  f.read("charging", s.charging);
  f.read("battery_percent", s.battery_percent, 0, 100);
  f.read("temperature_c", s.temperature_c, -50.0, 150.0);
  f.read("screen_on", s.screen_on);
  f.read("idle", s.idle);
  f.finish();
  return s;
}

DeviceState read_device_state(const std::filesystem::path& path) {
  require(std::filesystem::exists(path), ErrorCode::kNotFound,
          "device state file " + path.string() + " does not exist; the host app writes it (see docs/engine.md)");
  return DeviceState::from_json(read_json_file(path), path.string());
}

std::string JobPolicy::refusal(const DeviceState& s) const {
  if (!s.charging && !run_on_battery) return "not charging (the policy runs only while charging)";
  if (!s.charging && s.battery_percent < min_battery_percent)
    return "on battery at " + std::to_string(s.battery_percent) + "% (below " + std::to_string(min_battery_percent) + "%)";
  if (s.temperature_c > max_temperature_c)
    return "device at " + std::to_string(int(s.temperature_c)) + " C (above " + std::to_string(int(max_temperature_c)) + " C)";
  if (s.screen_on && require_screen_off) return "screen is on";
  if (!s.idle && require_idle) return "device is in use";
  return "";
}

Json JobPolicy::to_json() const {
  return Json{{"run_on_battery", run_on_battery},       {"min_battery_percent", min_battery_percent},
              {"max_temperature_c", max_temperature_c}, {"require_screen_off", require_screen_off},
              {"require_idle", require_idle}};
}

JobPolicy JobPolicy::from_json(const Json& j, const std::string& what) {
  JsonFields f(j, what);
  JobPolicy p;
  f.read("run_on_battery", p.run_on_battery);
  f.read("min_battery_percent", p.min_battery_percent, 0, 100);
  f.read("max_temperature_c", p.max_temperature_c, 0.0, 150.0);
  f.read("require_screen_off", p.require_screen_off);
  f.read("require_idle", p.require_idle);
  f.finish();
  return p;
}

}  // namespace hearth::engine
