#include "core/log.h"

#include <glog/logging.h>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace hearth {

void init_logging(bool verbose) {
  auto logger = spdlog::stderr_color_mt("hearth");
  logger->set_pattern("%^[%l]%$ %v");
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  spdlog::set_default_logger(logger);
  FLAGS_minloglevel = verbose ? google::GLOG_INFO : google::GLOG_FATAL;
}

}  // namespace hearth
