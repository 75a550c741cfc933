#include "trainer/loss_curve_svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace hearth::trainer {
namespace {

constexpr double kWidth = 640, kHeight = 400, kLeft = 60, kRight = 20, kTop = 40, kBottom = 50;

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

struct Frame {
  double x0, x1, y0, y1;
  double x(double step) const { return kLeft + (step - x0) / (x1 - x0) * (kWidth - kLeft - kRight); }
  double y(double loss) const { return kHeight - kBottom - (loss - y0) / (y1 - y0) * (kHeight - kTop - kBottom); }
};

std::string polyline(const CurvePoints& pts, const Frame& f, const std::string& color) {
  if (pts.empty()) return "";
  std::string s = "<polyline fill=\"none\" stroke=\"" + color + "\" stroke-width=\"1.5\" points=\"";
  for (const auto& [step, loss] : pts) s += num(f.x(step)) + "," + num(f.y(loss)) + " ";
  s += "\"/>\n";
  if (pts.size() < 40) {  // few points (evaluations): mark each
    for (const auto& [step, loss] : pts) {
      s += "<circle cx=\"" + num(f.x(step)) + "\" cy=\"" + num(f.y(loss)) + "\" r=\"3\" fill=\"" + color + "\"/>\n";
    }
  }
  return s;
}

}  // namespace

std::string curves_svg(const std::vector<NamedCurve>& curves, const std::string& title, const std::string& y_label) {
  Frame f{std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest(), std::numeric_limits<double>::max(),
          std::numeric_limits<double>::lowest()};
  for (const NamedCurve& c : curves) {
    for (const auto& [step, loss] : c.points) {
      if (!std::isfinite(loss)) continue;
      f.x0 = std::min(f.x0, step), f.x1 = std::max(f.x1, step);
      f.y0 = std::min(f.y0, loss), f.y1 = std::max(f.y1, loss);
    }
  }
  if (f.x0 > f.x1) f = {0, 1, 0, 1};
  if (f.x1 - f.x0 < 1) f.x1 = f.x0 + 1;
  const double pad = std::max(1e-3, (f.y1 - f.y0) * 0.05);
  f.y0 -= pad, f.y1 += pad;
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(kWidth) + "\" height=\"" + num(kHeight) +
                  "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + num(kWidth / 2) + "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">" + title + "</text>\n";
  const double bx = kLeft, by = kHeight - kBottom;
  s += "<line x1=\"" + num(bx) + "\" y1=\"" + num(by) + "\" x2=\"" + num(kWidth - kRight) + "\" y2=\"" + num(by) +
       "\" stroke=\"black\"/>\n<line x1=\"" + num(bx) + "\" y1=\"" + num(kTop) + "\" x2=\"" + num(bx) + "\" y2=\"" +
       num(by) + "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 4; ++i) {
    const double step = f.x0 + (f.x1 - f.x0) * i / 4, loss = f.y0 + (f.y1 - f.y0) * i / 4;
    s += "<text x=\"" + num(f.x(step)) + "\" y=\"" + num(by + 15) + "\" text-anchor=\"middle\">" + label(step) + "</text>\n";
    s += "<text x=\"" + num(bx - 5) + "\" y=\"" + num(f.y(loss) + 4) + "\" text-anchor=\"end\">" + label(loss) + "</text>\n";
  }
  s += "<text x=\"" + num(kWidth / 2) + "\" y=\"" + num(kHeight - 12) + "\" text-anchor=\"middle\">step</text>\n";
  s += "<text x=\"15\" y=\"" + num(kHeight / 2) + "\" transform=\"rotate(-90 15 " + num(kHeight / 2) +
       ")\" text-anchor=\"middle\">" + y_label + "</text>\n";
  for (const NamedCurve& c : curves) s += polyline(c.points, f, c.color);
  size_t longest = 0;
  for (const NamedCurve& c : curves) longest = std::max(longest, c.name.size());
  const double legend_x = kWidth - kRight - std::max(120.0, 6.5 * double(longest));
  for (size_t i = 0; i < curves.size(); ++i) {
    s += "<text x=\"" + num(legend_x) + "\" y=\"" + num(kTop + 5 + 15 * double(i)) + "\" fill=\"" +
         curves[i].color + "\">" + curves[i].name + "</text>\n";
  }
  return s + "</svg>\n";
}

std::string loss_curve_svg(const CurvePoints& train, const CurvePoints& eval, const std::string& title) {
  return curves_svg({{"train loss", "#1f77b4", train}, {"held-out loss", "#d62728", eval}}, title, "loss (nats/token)");
}

}  // namespace hearth::trainer
