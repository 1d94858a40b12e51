// Fuzzes what comes back from the upstream: the response decoder (JSON
// results and exception maps, any HTTP status) and the YAML converter.
#include <string>

#include "encoding/yaml_json.h"
#include "upstream/storm_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  long status = 100 + data[0] * 2;  // 100..610
  std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  auto outcome = stormbroker::DecodeResponse(status, body);
  if (outcome.ok() && outcome->is_error) {
    stormbroker::IsAuthorizationFailure(outcome->error);
    stormbroker::IsTransientFailure(outcome->error);
    if (!outcome->error.extra.is_object()) __builtin_trap();
  }
  if (auto yaml = stormbroker::ParseYaml(body); yaml.ok()) stormbroker::RenderYaml(*yaml);
  return 0;
}
