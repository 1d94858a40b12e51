// The config file's keys, section by section, as tables: each key's name in
// the file, how it is read into the section's struct, whether a reload
// (SIGHUP) applies it or waits for a restart, and how its values compare
// and copy. The tables (config/sections.h) feed the parser (the known keys,
// FILE:LINE errors), the reload plan (config/reload_plan.h), Clone() and
// the tests, so each key is written down once.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/reload_plan.h"
#include "config/yaml_reader.h"

namespace stormbroker::config {

enum class OnReload {
  kApplied,  // takes effect at once
  kRestart,  // holds tokens, sockets, threads or sizes fixed at start: named as waiting for a restart
};

// One key of the file, by its full path ("limits.idle_timeout";
// "accounts.*.username" for every account's).
struct KeyInfo {
  std::string path;
  std::string example;  // a valid value other than the default, settable alone; empty for keys that read
                        // files or need another key beside them
  OnReload reload;
};

template <typename Section>
struct Key {
  std::string name;  // as written in its section
  // Reads `value` (at `path`, e.g. "limits.idle_timeout") into `into`.
  std::function<void(const YAML::Node& value, const std::string& path, Section& into)> read;
  // Names in `plan` what changed under this key from `a` to `b`.
  std::function<void(const Section& a, const Section& b, const std::string& path, ReloadPlan& plan)> compare;
  // Copies this key's value from `from` to `to`: all of it, or (with
  // `applied_only`) only what a reload applies.
  std::function<void(const Section& from, Section& to, bool applied_only)> copy;
  // Adds this key (or, for a section, each of its keys) to `out`, under `prefix`.
  std::function<void(const std::string& prefix, std::vector<KeyInfo>& out)> describe;
};
template <typename Section>
using Keys = std::vector<Key<Section>>;

// A copy; of a secret, or of a section holding one, a Clone().
template <typename T>
T CopyOf(const T& value) {
  if constexpr (requires { value.Clone(); }) {
    return value.Clone();
  } else {
    return value;
  }
}

// How a key's change is named: applied or waiting for a restart.
inline void Record(OnReload reload, bool same, const std::string& path, ReloadPlan& plan) {
  if (!same) (reload == OnReload::kApplied ? plan.applied : plan.needs_restart).push_back(path);
}

// A key whose value goes into `members` (one or more: a key that fills two,
// such as a secret's path and content, compares and copies both) by `read`.
template <typename Section, typename... Members>
Key<Section> Field(std::string name, std::function<void(const YAML::Node&, const std::string&, Section&)> read,
                   std::string example, OnReload reload, Members Section::*... members) {
  Key<Section> key;
  key.name = std::move(name);
  key.read = std::move(read);
  key.compare = [reload, members...](const Section& a, const Section& b, const std::string& path, ReloadPlan& plan) {
    Record(reload, ((a.*members == b.*members) && ...), path, plan);
  };
  key.copy = [reload, members...](const Section& from, Section& to, bool applied_only) {
    if (applied_only && reload != OnReload::kApplied) return;
    ((to.*members = CopyOf(from.*members)), ...);
  };
  key.describe = [name = key.name, example = std::move(example), reload](const std::string& prefix,
                                                                        std::vector<KeyInfo>& out) {
    out.push_back({prefix + name, example, reload});
  };
  return key;
}

// The common case: one member, read by `parse` (value, path) -> T.
template <typename Section, typename T, typename Parse>
Key<Section> Field(std::string name, T Section::*member, Parse parse, std::string example,
                   OnReload reload = OnReload::kRestart) {
  return Field<Section>(
      std::move(name),
      [member, parse](const YAML::Node& value, const std::string& path, Section& into) {
        into.*member = parse(value, path);
      },
      std::move(example), reload, member);
}

// `key` as another way to give the value another key holds (a secret as a
// systemd credential rather than a file): a change is named once, under
// that other key.
template <typename Section>
Key<Section> Alias(Key<Section> key) {
  key.compare = [](const Section&, const Section&, const std::string&, ReloadPlan&) {};
  key.describe = [](const std::string&, std::vector<KeyInfo>&) {};
  return key;
}

template <typename Section>
std::vector<std::string> NamesOf(const Keys<Section>& keys) {
  std::vector<std::string> names;
  for (const auto& key : keys) names.push_back(key.name);
  return names;
}

// Reads every key of mapping `node` (at `path`, e.g. "limits"; empty for
// the top level) by `keys`, in their order, into `into`, which holds the
// defaults; an unknown key is an error.
template <typename Section>
void ReadSection(const YAML::Node& node, const std::string& path, const Keys<Section>& keys, Section& into) {
  const std::string where = path.empty() ? "the top level" : path;
  RequireMap(node, where);
  RejectUnknownKeys(node, where, NamesOf(keys));
  for (const auto& key : keys) {
    if (node[key.name]) key.read(node[key.name], path.empty() ? key.name : path + "." + key.name, into);
  }
}

// `prefix`: the section's path and a dot ("limits."), empty at the top level.
template <typename Section>
void CompareSection(const Keys<Section>& keys, const Section& a, const Section& b, const std::string& prefix,
                    ReloadPlan& plan) {
  for (const auto& key : keys) key.compare(a, b, prefix + key.name, plan);
}

template <typename Section>
void CopySection(const Keys<Section>& keys, const Section& from, Section& to, bool applied_only) {
  for (const auto& key : keys) key.copy(from, to, applied_only);
}

template <typename Section>
void DescribeSection(const Keys<Section>& keys, const std::string& prefix, std::vector<KeyInfo>& out) {
  for (const auto& key : keys) key.describe(prefix, out);
}

// A key whose value is a mapping of keys of its own, read by `keys` into
// the same struct (listen.http_tls, fleet.etcd).
template <typename Section>
Key<Section> Nested(std::string name, const Keys<Section>& keys) {
  Key<Section> key;
  key.name = std::move(name);
  key.read = [&keys](const YAML::Node& value, const std::string& path, Section& into) {
    ReadSection(value, path, keys, into);
  };
  key.compare = [&keys](const Section& a, const Section& b, const std::string& path, ReloadPlan& plan) {
    CompareSection(keys, a, b, path + ".", plan);
  };
  key.copy = [&keys](const Section& from, Section& to, bool applied_only) {
    CopySection(keys, from, to, applied_only);
  };
  key.describe = [name = key.name, &keys](const std::string& prefix, std::vector<KeyInfo>& out) {
    DescribeSection(keys, prefix + name + ".", out);
  };
  return key;
}

// A key whose value is a section of its own, held in `member` and read by
// `parse` (which checks it as a whole), with `keys` as its table.
template <typename Outer, typename Section, typename Parse>
Key<Outer> SectionKey(std::string name, Section Outer::*member, const Keys<Section>& keys, Parse parse) {
  Key<Outer> key;
  key.name = std::move(name);
  key.read = [member, parse](const YAML::Node& value, const std::string& path, Outer& into) {
    into.*member = parse(value, path);
  };
  key.compare = [member, &keys](const Outer& a, const Outer& b, const std::string& path, ReloadPlan& plan) {
    CompareSection(keys, a.*member, b.*member, path + ".", plan);
  };
  key.copy = [member, &keys](const Outer& from, Outer& to, bool applied_only) {
    if (applied_only) CopySection(keys, from.*member, to.*member, true);
    else to.*member = CopyOf(from.*member);
  };
  key.describe = [name = key.name, &keys](const std::string& prefix, std::vector<KeyInfo>& out) {
    DescribeSection(keys, prefix + name + ".", out);
  };
  return key;
}

}  // namespace stormbroker::config
