// Draws the training and evaluation loss against the step as a small standalone SVG file, and
// any number of named curves in one plot (e.g. the held-out perplexity of several runs).
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace hearth::trainer {

using CurvePoints = std::vector<std::pair<double, double>>;  // (step, loss)

struct NamedCurve {
  std::string name;    // legend text
  std::string color;   // SVG color, e.g. "#1f77b4"
  CurvePoints points;  // (x, y)
};

// An SVG document with the curves, axes with tick labels ("step" along x, `y_label` up y), and
// a legend in the order given.
std::string curves_svg(const std::vector<NamedCurve>& curves, const std::string& title, const std::string& y_label);

// An SVG document with both curves, axes with tick labels, and a legend.
std::string loss_curve_svg(const CurvePoints& train, const CurvePoints& eval, const std::string& title);

}  // namespace hearth::trainer
