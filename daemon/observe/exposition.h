// Metrics as Prometheus reads them: families of samples, each family with
// its name, type and help, written in the text exposition format (0.0.4).
// The broker builds one Exposition per scrape from its live counters; the
// same data goes to the /metrics endpoint, the textfile and stormctl.
#pragma once

#include <deque>
#include <string>
#include <utility>
#include <vector>

namespace stormbroker {

using Labels = std::vector<std::pair<std::string, std::string>>;

struct Sample {
  std::string suffix;  // added to the family's name: "", "_bucket", "_sum", "_count"
  Labels labels;
  double value = 0;
};

struct MetricFamily {
  std::string name;
  std::string type;  // counter, gauge, histogram
  std::string help;
  std::vector<Sample> samples;
};

class Exposition {
 public:
  // A new family; samples are added to the one returned (valid as long as
  // this Exposition: a collector may hold several at once).
  MetricFamily& Family(std::string name, std::string type, std::string help);
  // A family of one sample without labels (a process-wide gauge or counter).
  void AddSingle(std::string name, std::string type, std::string help, double value);

  // One histogram's samples in `family`: `cumulative` holds the count at or
  // below each of `bounds`, then the count of all (+Inf).
  static void AddHistogram(MetricFamily& family, const Labels& labels, const std::vector<double>& bounds,
                           const std::vector<uint64_t>& cumulative, double sum);

  const std::deque<MetricFamily>& families() const { return families_; }
  // The text format: HELP and TYPE once per family, then its samples; label
  // values escaped (backslash, quote, newline); +Inf written as such.
  std::string Text() const;

 private:
  std::deque<MetricFamily> families_;  // a deque: references survive push_back
};

}  // namespace stormbroker
