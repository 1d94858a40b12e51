// The Grafana dashboard (contrib/grafana/stormbroker.json) proven on live
// data: Debian's prometheus, with the recording rules and alerts loaded,
// scrapes the real daemon while the emulator serves a workload (calls,
// a denial, renewals, a 429 pause, cache hits, a prompt account), and every
// query of every panel, with the variables set to match everything, must
// return a series. The fleet's row is proven on three brokers over etcd.
// Without Grafana, the JSON is checked as far as its schema goes: required
// fields, unique panel ids, variables defined and used.

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "fleet_fixture.h"
#include "harness.h"

namespace {

using harness::RunCommand;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kPassword = "dashboard-pw-8Lk";

std::string ContribFile(const std::string& path) { return std::string(CONTRIB_DIR) + "/" + path; }

json Dashboard() { return json::parse(harness::ReadFile(ContribFile("grafana/stormbroker.json"))); }

// One query of one panel, and the row the panel sits in.
struct PanelQuery {
  std::string row;
  std::string panel;
  std::string expr;
};

std::vector<PanelQuery> Queries(const json& dashboard) {
  std::vector<PanelQuery> queries;
  std::string row;
  for (const json& panel : dashboard["panels"]) {
    if (panel["type"] == "row") {
      row = panel["title"];
      continue;
    }
    for (const json& target : panel["targets"]) queries.push_back({row, panel["title"], target["expr"]});
  }
  return queries;
}

// The queries of the panels in rows `rows`, or (`except`) in all rows but those.
std::vector<PanelQuery> InRows(const std::vector<PanelQuery>& queries, const std::set<std::string>& rows,
                               bool except) {
  std::vector<PanelQuery> kept;
  for (const PanelQuery& query : queries) {
    if (rows.count(query.row) != static_cast<size_t>(except)) kept.push_back(query);
  }
  return kept;
}

// What Grafana would send with every variable at "All" (the variables'
// allValue) and a one-minute rate interval (four scrapes at most scrape
// intervals Prometheus is run with).
std::string Resolved(std::string expr) {
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"$__rate_interval", "1m"}, {"$job", ".*"}, {"$instance", ".*"}, {"$account", ".*"}}) {
    for (size_t at; (at = expr.find(name)) != std::string::npos;) expr.replace(at, name.size(), value);
  }
  return expr;
}

// Debian's prometheus on a loopback port, scraping `targets` every second
// and evaluating the project's rules every second.
class Prometheus {
 public:
  Prometheus(const harness::TempDir& dir, const std::vector<int>& targets) : port_(harness::FreePort()) {
    YAML::Node config;
    config["global"]["scrape_interval"] = "1s";
    config["global"]["evaluation_interval"] = "1s";
    config["rule_files"].push_back(ContribFile("prometheus/stormbroker.rules.yml"));
    config["rule_files"].push_back(ContribFile("prometheus/stormbroker.recording.yml"));
    YAML::Node job;
    job["job_name"] = "stormbroker";
    for (int port : targets) job["static_configs"][0]["targets"].push_back("127.0.0.1:" + std::to_string(port));
    config["scrape_configs"].push_back(job);
    std::filesystem::create_directories(dir.path() + "/prometheus");
    process_ = std::make_unique<harness::Process>(
        std::vector<std::string>{"/usr/bin/prometheus",
                                 "--config.file=" + dir.Write("prometheus.yml", YAML::Dump(config)),
                                 "--storage.tsdb.path=" + dir.path() + "/prometheus",
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"},
        dir.path() + "/prometheus.log", /*pipe_stdout=*/false);
    log_ = dir.path() + "/prometheus.log";
  }

  // The result of an instant query now; a JSON null, and why in `error`,
  // when it failed (Prometheus not ready yet, or a query it cannot parse).
  json Query(const std::string& expr, std::string* error = nullptr) const {
    auto answer = RunCommand({"/usr/bin/curl", "-s", "--get", "--data-urlencode", "query=" + expr,
                              "http://127.0.0.1:" + std::to_string(port_) + "/api/v1/query"});
    json parsed = json::parse(answer.out, nullptr, /*allow_exceptions=*/false);
    if (answer.exit_code != 0 || parsed.is_discarded() || parsed.value("status", "") != "success") {
      if (error) *error = answer.out + answer.err;
      return nullptr;
    }
    return parsed["data"]["result"];
  }

  // Whether every target has been scraped `scrapes` times and the rules have
  // had as long to run.
  bool Scraped(size_t targets, int scrapes) const {
    json result = Query("count_over_time(up{job=\"stormbroker\"}[1m]) >= " + std::to_string(scrapes));
    return result.is_array() && result.size() == targets;
  }

  std::string Log() const { return harness::ReadFile(log_); }

 private:
  int port_;
  std::string log_;
  std::unique_ptr<harness::Process> process_;
};

// The daemon's exposition on `port`, each line after a newline.
std::string Scrape(int port) {
  return "\n" + RunCommand({"/usr/bin/curl", "-sf", "http://127.0.0.1:" + std::to_string(port) + "/metrics"}).out;
}

// Every metric a query names is one the daemon exports (seen in `exposition`,
// a histogram by its _bucket) or one the recording rules record.
void ExpectEveryNameExported(const std::vector<PanelQuery>& queries, const std::string& exposition) {
  std::string recorded = harness::ReadFile(ContribFile("prometheus/stormbroker.recording.yml"));
  std::regex name(R"(\b((stormbroker_|process_)[a-z_]+|[a-z_]+:stormbroker_[a-z_]+:[a-z0-9]+)\b)");
  for (const PanelQuery& query : queries) {
    for (std::sregex_iterator it(query.expr.begin(), query.expr.end(), name), end; it != end; ++it) {
      std::string metric = (*it)[1];
      bool known = metric.find(':') != std::string::npos
                       ? recorded.find("record: " + metric + "\n") != std::string::npos
                       : exposition.find("\n" + metric + "{") != std::string::npos ||
                             exposition.find("\n" + metric + " ") != std::string::npos;
      EXPECT_TRUE(known) << query.row << " / " << query.panel << " names " << metric
                         << ", which the daemon does not export";
    }
  }
}

// Every query returns at least one series.
void ExpectEverySeriesThere(const Prometheus& prometheus, const std::vector<PanelQuery>& queries) {
  ASSERT_FALSE(queries.empty());
  for (const PanelQuery& query : queries) {
    std::string error;
    bool answered = harness::Eventually(
        [&] {
          json result = prometheus.Query(Resolved(query.expr), &error);
          return result.is_array() && !result.empty();
        },
        10s);
    EXPECT_TRUE(answered) << query.row << " / " << query.panel << " shows nothing: " << Resolved(query.expr)
                          << "\n" << error;
  }
}

TEST(DashboardSchemaTest, TheJsonIsADashboardGrafanaCanImport) {
  json dashboard = Dashboard();
  for (const char* field : {"title", "uid", "schemaVersion", "panels", "templating", "time"}) {
    EXPECT_TRUE(dashboard.contains(field)) << "no " << field;
  }
  EXPECT_LE(dashboard["uid"].get<std::string>().size(), 40u) << "Grafana's limit on a uid";
  std::set<int> ids;
  std::set<std::string> defined;
  for (const json& variable : dashboard["templating"]["list"]) defined.insert(variable["name"].get<std::string>());
  EXPECT_EQ(defined, (std::set<std::string>{"datasource", "job", "instance", "account"}));
  std::set<std::string> used;
  std::regex reference(R"(\$\{?([a-z_]+)\}?)");
  auto note_references = [&](const std::string& text) {
    for (std::sregex_iterator it(text.begin(), text.end(), reference), end; it != end; ++it) used.insert((*it)[1]);
  };
  for (const json& variable : dashboard["templating"]["list"]) {
    if (variable["type"] == "query") note_references(variable["definition"]);
  }
  for (const json& panel : dashboard["panels"]) {
    EXPECT_TRUE(ids.insert(panel["id"].get<int>()).second) << "panel id " << panel["id"] << " twice";
    for (const char* field : {"type", "title", "gridPos"}) EXPECT_TRUE(panel.contains(field)) << panel.dump();
    const json& grid = panel["gridPos"];
    EXPECT_LE(grid["x"].get<int>() + grid["w"].get<int>(), 24) << panel["title"] << " is wider than the grid";
    if (panel["type"] == "row") continue;
    EXPECT_EQ(panel["datasource"]["uid"], "${datasource}") << panel["title"] << ": a hard-coded datasource";
    ASSERT_FALSE(panel["targets"].empty()) << panel["title"];
    std::set<std::string> refs;
    for (const json& target : panel["targets"]) {
      EXPECT_TRUE(refs.insert(target["refId"].get<std::string>()).second) << panel["title"];
      std::string expr = target["expr"];
      note_references(expr);
      EXPECT_EQ(expr.find("instance=\"") , std::string::npos) << panel["title"] << ": a hard-coded instance";
      if (expr.find("stormbroker") != std::string::npos) {
        EXPECT_NE(expr.find("instance=~\"$instance\""), std::string::npos) << panel["title"] << ": " << expr;
        EXPECT_NE(expr.find("job=~\"$job\""), std::string::npos) << panel["title"] << ": " << expr;
      }
    }
  }
  used.insert("datasource");  // every panel's datasource, checked above
  used.erase("__rate_interval");  // Grafana's own
  EXPECT_EQ(used, defined) << "a variable defined and never used, or used and never defined";
}

class DashboardTest : public harness::BrokerTest {};

TEST_F(DashboardTest, EveryPanelShowsLiveDataFromTheDaemon) {
  StartStorm(kPassword);
  int metrics_port = harness::FreePort();
  YAML::Node config = Config();
  config["metrics"]["listen"] = "127.0.0.1:" + std::to_string(metrics_port);
  config["policy"] = YAML::Load(R"([{users: [root], accounts: [prod], methods: ["Utilities/*", Storm/Server/list]},
                                    {users: [root], metrics: true}])");
  config["cache"] = YAML::Load(R"([{methods: [Storm/Server/list], ttl: 60s}])");
  // Renewals and keep-alives within seconds.
  config["accounts"]["prod"]["max_lifetime"] = "4s";
  config["accounts"]["prod"]["renew_before"] = "2s";
  config["accounts"]["prod"]["token_timeout"] = "3s";
  config["upstream"]["keep_warm"]["connections"] = "1";
  // A prompt account, which waits for a passcode nobody gives.
  config["accounts"]["tfa"] = YAML::Clone(config["accounts"]["prod"]);
  config["accounts"]["tfa"]["two_factor"] = "prompt";
  broker_ = std::make_unique<harness::Broker>(dir_, config);
  auto client = broker_->Connect();
  ASSERT_TRUE(harness::Eventually([&] {
    auto accounts = client->ListAccounts();
    if (!accounts.ok()) return false;
    for (const auto& account : accounts.value()) {
      if (account.name == "prod" && account.state == "active") return true;
    }
    return false;
  })) << broker_->Log();

  Prometheus prometheus(dir_, {metrics_port});
  storm_->Arm(R"({"kind": "rate_limit", "retry_after": 1, "method": "utilities/info/ping"})");
  EXPECT_TRUE(client->Call("prod", "Utilities/Info/ping", {}).ok()) << "waits out the pause, then is answered";
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(client->Call("prod", "Storm/Server/list", {}).ok());  // a miss, then hits
  EXPECT_FALSE(client->Call("prod", "Storm/Server/destroy", {}).ok()) << "denied by policy";
  ASSERT_TRUE(harness::Eventually([&] { return prometheus.Scraped(1, 4); }, 30s)) << prometheus.Log();

  // The fleet's row: FleetDashboardTest.
  auto queries = InRows(Queries(Dashboard()), {"Fleet"}, /*except=*/true);
  ExpectEveryNameExported(queries, Scrape(metrics_port));
  ExpectEverySeriesThere(prometheus, queries);
}

class FleetDashboardTest : public fleet::FleetTest {};

TEST_F(FleetDashboardTest, TheFleetRowShowsEachMachine) {
  StartStorm();
  std::vector<int> ports;
  StartAll([&](int i) {
    YAML::Node config = FleetConfig(i);
    ports.push_back(harness::FreePort());
    config["metrics"]["listen"] = "127.0.0.1:" + std::to_string(ports.back());
    config["policy"].push_back(YAML::Load("{users: [root], metrics: true}"));
    return config;
  });
  Prometheus prometheus(dir_, ports);
  ASSERT_TRUE(harness::Eventually([&] { return prometheus.Scraped(ports.size(), 3); }, 30s)) << prometheus.Log();
  auto queries = InRows(Queries(Dashboard()), {"Fleet"}, /*except=*/false);
  ExpectEveryNameExported(queries, Scrape(ports.front()));
  ExpectEverySeriesThere(prometheus, queries);
  auto leader = std::find_if(queries.begin(), queries.end(),
                             [](const PanelQuery& query) { return query.panel == "Leader of each account"; });
  ASSERT_NE(leader, queries.end());
  json leaders = prometheus.Query(Resolved(leader->expr));
  EXPECT_EQ(leaders.size(), 1u) << "one leader for the one account: " << leaders.dump();
}

}  // namespace
