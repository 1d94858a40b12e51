#include "observe/exposition.h"

#include <cmath>
#include <charconv>

namespace stormbroker {
namespace {

std::string Number(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  if (value == std::floor(value) && std::fabs(value) < 1e15) return std::to_string(static_cast<long long>(value));
  char text[32];
  auto written = std::to_chars(text, text + sizeof text, value);  // the shortest text that reads back the same
  return std::string(text, written.ptr);
}

void AppendEscaped(std::string& out, const std::string& value, bool quotes) {
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '"' && quotes) out += "\\\"";
    else out += c;
  }
}

}  // namespace

MetricFamily& Exposition::Family(std::string name, std::string type, std::string help) {
  families_.push_back({std::move(name), std::move(type), std::move(help), {}});
  return families_.back();
}

void Exposition::AddSingle(std::string name, std::string type, std::string help, double value) {
  Family(std::move(name), std::move(type), std::move(help)).samples.push_back({"", {}, value});
}

void Exposition::AddHistogram(MetricFamily& family, const Labels& labels, const std::vector<double>& bounds,
                              const std::vector<uint64_t>& cumulative, double sum) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    Labels with_le = labels;
    with_le.emplace_back("le", Number(bounds[i]));
    family.samples.push_back({"_bucket", std::move(with_le), static_cast<double>(cumulative[i])});
  }
  Labels with_inf = labels;
  with_inf.emplace_back("le", "+Inf");
  double count = static_cast<double>(cumulative.back());
  family.samples.push_back({"_bucket", std::move(with_inf), count});
  family.samples.push_back({"_sum", labels, sum});
  family.samples.push_back({"_count", labels, count});
}

std::string Exposition::Text() const {
  std::string out;
  for (const MetricFamily& family : families_) {
    out += "# HELP " + family.name + " ";
    AppendEscaped(out, family.help, /*quotes=*/false);
    out += "\n# TYPE " + family.name + " " + family.type + "\n";
    for (const Sample& sample : family.samples) {
      out += family.name + sample.suffix;
      if (!sample.labels.empty()) {
        out += '{';
        for (size_t i = 0; i < sample.labels.size(); ++i) {
          if (i) out += ',';
          out += sample.labels[i].first + "=\"";
          AppendEscaped(out, sample.labels[i].second, /*quotes=*/true);
          out += '"';
        }
        out += '}';
      }
      out += ' ' + Number(sample.value) + '\n';
    }
  }
  return out;
}

}  // namespace stormbroker
