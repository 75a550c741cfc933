// Precompiled header: the heavy LibTorch and library headers most translation units use.
// Only ever named by CMake; sources include what they need themselves.
#pragma once
#include <ATen/ATen.h>
#include <torch/types.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>
