// Draws the training and evaluation loss against the step as a small standalone SVG file.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace hearth::trainer {

using CurvePoints = std::vector<std::pair<double, double>>;  // (step, loss)

// An SVG document with both curves, axes with tick labels, and a legend.
std::string loss_curve_svg(const CurvePoints& train, const CurvePoints& eval, const std::string& title);

}  // namespace hearth::trainer
