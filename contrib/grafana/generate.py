#!/usr/bin/env python3
"""Writes stormbroker.json, the Grafana dashboard for stormbrokerd's metrics.

The panels are written here once, as data, and the JSON (ids, positions,
the datasource on every query) is derived from them, so nobody edits the
JSON by hand and nobody needs jsonnet to use it:

    contrib/grafana/generate.py            # rewrites stormbroker.json
    contrib/grafana/generate.py --check    # fails if stormbroker.json is stale

Every expression is proven against a live daemon by
tests/integration/dashboard_test.cc; the recording rules it reads
(instance_account:...) are in contrib/prometheus/stormbroker.recording.yml.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Every query is limited to the chosen jobs and instances (and accounts,
# where the series have one).
S = 'job=~"$job", instance=~"$instance"'
SA = S + ', account=~"$account"'


def quantiles(series, by="le"):
    """p50, p90 and p99 of a recorded bucket rate."""
    return [(f'histogram_quantile({q}, sum by ({by}) ({series}{{{SA}}}))', f"p{int(q * 100)}")
            for q in (0.5, 0.9, 0.99)]


# Rows of panels: (title, type, unit, description, [(expr, legend)], options).
# A "table" shows the series of an instant query, one row each.
ROWS = [
    ("Accounts", [
        ("Token state", "table", None,
         "The state each account is in now (active or refreshing is well). "
         "Alert: StormbrokerAccountNotActive (no token for 5 minutes).",
         [(f'max by (instance, account, state) (stormbroker_account_state{{{SA}}}) == 1', "")], {}),
        ("Until the token dies", "timeseries", "s",
         "Seconds to the token's hard limit (the API's 12 hours; the broker renews before it) "
         "and to its idle end (each call or keep-alive pushes it back).",
         [(f'min by (instance, account) (stormbroker_token_hard_deadline_timestamp_seconds{{{SA}}}) - time()',
           "{{account}} hard limit ({{instance}})"),
          (f'min by (instance, account) (stormbroker_token_inactivity_deadline_timestamp_seconds{{{SA}}}) - time()',
           "{{account}} idle end ({{instance}})")], {}),
        ("Until a passcode is needed", "timeseries", "s",
         "Two-factor prompt accounts only: seconds until an operator must run `stormctl login` (0: now). "
         "Alerts: StormbrokerPasscodeNeededWithinAnHour, StormbrokerPasscodeNeededWithin15Minutes.",
         [(f'min by (instance, account) (stormbroker_passcode_needed_in_seconds{{{SA}}})',
           "{{account}} ({{instance}})")],
         {"thresholds": [("red", None), ("orange", 900), ("green", 3600)]}),
        ("Logins, renewals and keep-alives in the last hour", "timeseries", "short",
         "Logins by credential spent and result (a renewal is a login too), renewals, and keep-alives of a held token.",
         [(f'sum by (account, kind, result) (increase(stormbroker_logins_total{{{SA}}}[1h]))',
           "login {{account}} {{kind}} {{result}}"),
          (f'sum by (account, result) (increase(stormbroker_renewals_total{{{SA}}}[1h]))',
           "renewal {{account}} {{result}}"),
          (f'sum by (account, result) (increase(stormbroker_keepalives_total{{{SA}}}[1h]))',
           "keep-alive {{account}} {{result}}")], {}),
        ("Pauses the API asked for", "timeseries", "short",
         "Times in the last hour the Storm API asked the broker to slow down (HTTP 429, or 503 with Retry-After), "
         "and 1 while an account is paused.",
         [(f'sum by (account) (increase(stormbroker_upstream_pauses_total{{{SA}}}[1h]))', "pauses {{account}}"),
          (f'max by (account) (stormbroker_upstream_paused{{{SA}}})', "paused now {{account}}")], {}),
        ("Length of the last pause", "timeseries", "s",
         "How long callers waited in each account's last pause: the API's Retry-After, or the broker's back-off.",
         [(f'max by (instance, account) (stormbroker_upstream_last_pause_seconds{{{SA}}})',
           "{{account}} ({{instance}})")], {}),
    ]),
    ("Doors", [
        ("Connections by door", "timeseries", "short",
         "Callers' connections open now by door, the most in the last hour, and the limit for all callers together "
         "(limits.connections).",
         [(f'sum by (door) (stormbroker_caller_connections{{{S}}})', "{{door}}"),
          (f'max by (door) (max_over_time(stormbroker_caller_connections{{{S}}}[1h]))', "{{door}} most (1 h)"),
          (f'min(stormbroker_caller_connections_limit{{{S}}})', "limit")], {}),
        ("Calls by outcome", "timeseries", "reqps",
         "API calls a second by how they ended: ok and api_error are the API's answers; denied and invalid the "
         "callers'; unavailable, deadline and needs_login the broker's own. Alert: StormbrokerCallsFailing.",
         [(f'sum by (outcome) (instance_account:stormbroker_calls:rate5m{{{SA}}})', "{{outcome}}")], {}),
        ("Refusals by door and reason", "timeseries", "reqps",
         "Connections and requests refused a second, by door and reason (policy, invalid, limit, unidentified).",
         [(f'sum by (door, reason) (instance:stormbroker_caller_refusals:rate5m{{{S}}})', "{{door}} {{reason}}")],
         {}),
        ("Time to answer a call", "timeseries", "s",
         "From a call's arrival at the broker to its answer, for calls policy allowed.",
         quantiles("instance_account:stormbroker_call_duration_seconds_bucket:rate5m"), {}),
    ]),
    ("Upstream line", [
        ("Calls waiting in line", "timeseries", "short",
         "Callers' requests waiting for an upstream connection, by account (the fair line).",
         [(f'sum by (account) (stormbroker_upstream_queue_calls{{{SA}}})', "{{account}}")], {}),
        ("Busy upstream connections", "timeseries", "short",
         "Upstream connections carrying a request now, by account and in all.",
         [(f'sum by (account) (stormbroker_upstream_account_connections_busy{{{SA}}})', "{{account}}"),
          (f'sum(stormbroker_upstream_connections_busy{{{S}}})', "all")], {}),
        ("Time in line", "timeseries", "s",
         "How long an upstream request waited for a connection.",
         quantiles("instance_account:stormbroker_upstream_queue_wait_seconds_bucket:rate5m"), {}),
        ("Time of an exchange with the API", "timeseries", "s",
         "Each exchange of a call with the upstream (a retried call has two).",
         quantiles("instance_account:stormbroker_upstream_duration_seconds_bucket:rate5m"), {}),
        ("Refused because the line was full, and keep-warm pings", "timeseries", "reqps",
         "Requests refused at once because the line for the upstream was full, and pings sent to keep "
         "connections to the API open between calls (upstream.keep_warm).",
         [(f'sum by (instance) (rate(stormbroker_upstream_calls_refused_total{{{S}}}[$__rate_interval]))',
           "refused {{instance}}"),
          (f'sum by (instance) (rate(stormbroker_upstream_warm_pings_total{{{S}}}[$__rate_interval]))',
           "warm pings {{instance}}")], {}),
    ]),
    ("Cache", [
        ("Answers of covered calls", "timeseries", "reqps",
         "Calls a cache rule covers, by how they were answered: hit, coalesced (joined a call in flight), miss, "
         "bypass.",
         [(f'sum by (result) (instance_account:stormbroker_cache_requests:rate5m{{{SA}}})', "{{result}}")], {}),
        ("Share answered without the API", "timeseries", "percentunit",
         "Hits and coalesced calls as a share of every covered call.",
         [(f'sum(instance_account:stormbroker_cache_requests:rate5m{{{SA}, result=~"hit|coalesced"}}) '
           f'/ sum(instance_account:stormbroker_cache_requests:rate5m{{{SA}}})', "answered by the broker")], {}),
        ("Bytes the cache holds", "timeseries", "bytes",
         "Bytes of answers held (cache_max_bytes bounds it).",
         [(f'sum by (instance) (stormbroker_cache_bytes{{{S}}})', "{{instance}}")], {}),
    ]),
    ("Fleet", [
        ("Leader of each account", "table", None,
         "The machine that logs in and renews for each account; the others follow.",
         [(f'max by (instance, account) (stormbroker_fleet_role{{{SA}, role="leader"}}) == 1', "")], {}),
        ("In touch with etcd", "timeseries", "short",
         "1 while the machine holds its lease in the fleet's etcd. Alert: StormbrokerFleetCutOff.",
         [(f'min by (instance) (stormbroker_fleet_connected{{{S}}})', "{{instance}}")], {}),
        ("etcd errors", "timeseries", "reqps",
         "Requests to etcd that failed a second (each member tried counts).",
         [(f'sum by (instance) (rate(stormbroker_fleet_etcd_errors_total{{{S}}}[$__rate_interval]))',
           "{{instance}}")], {}),
    ]),
    ("Process", [
        ("Audit records dropped in the last hour", "timeseries", "short",
         "Records the trail's writer could not keep up with (the trail says how many). "
         "Alert: StormbrokerAuditRecordsDropped.",
         [(f'sum by (instance) (increase(stormbroker_audit_records_dropped_total{{{S}}}[1h]))', "{{instance}}")],
         {}),
        ("Memory and descriptors", "timeseries", "short",
         "Resident memory (MiB) and open file descriptors against their limit.",
         [(f'max by (instance) (process_resident_memory_bytes{{{S}}}) / 1048576', "MiB {{instance}}"),
          (f'max by (instance) (process_open_fds{{{S}}})', "fds {{instance}}"),
          (f'max by (instance) (process_max_fds{{{S}}})', "fd limit {{instance}}")], {}),
        ("Builds running", "table", None,
         "Which version of the broker each instance runs.",
         [(f'max by (instance, version) (stormbroker_build_info{{{S}}})', "")], {}),
    ]),
]


def variable(name, label, query):
    return {
        "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
        "definition": query, "query": {"query": query, "refId": name},
        "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*", "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": [], "hide": 0,
    }


def panel(next_id, x, y, width, title, kind, unit, description, targets, options):
    table = kind == "table"
    defaults = {"unit": unit} if unit else {}
    if "thresholds" in options:
        defaults["thresholds"] = {"mode": "absolute",
                                  "steps": [{"color": c, "value": v} for c, v in options["thresholds"]]}
        defaults["custom"] = {"thresholdsStyle": {"mode": "line"}}
    result = {
        "id": next_id, "type": kind, "title": title, "description": description, "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "targets": [],
    }
    for ref, (expr, legend) in enumerate(targets):
        target = {"refId": chr(ord("A") + ref), "datasource": DATASOURCE, "expr": expr, "range": not table,
                  "instant": table}
        if table:
            target["format"] = "table"
        else:
            target["legendFormat"] = legend
        result["targets"].append(target)
    if table:
        result["options"] = {"showHeader": True}
        result["transformations"] = [{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}]
    else:
        result["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                             "tooltip": {"mode": "multi", "sort": "desc"}}
    return result


def dashboard():
    panels, next_id, y = [], 1, 0
    for row_title, row_panels in ROWS:
        panels.append({"id": next_id, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        next_id, y = next_id + 1, y + 1
        per_line = 3 if len(row_panels) % 3 == 0 else 2
        width = 24 // per_line
        for i, spec in enumerate(row_panels):
            x = (i % per_line) * width
            panels.append(panel(next_id, x, y, width, *spec))
            next_id += 1
            if i % per_line == per_line - 1 or i == len(row_panels) - 1:
                y += 8
    return {
        "title": "stormbroker",
        "uid": "stormbroker",
        "description": "stormbrokerd: accounts, doors, the upstream line, the cache and the fleet",
        "tags": ["stormbroker"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {}, "options": [], "refresh": 1, "regex": "", "hide": 0},
            variable("job", "Job", "label_values(stormbroker_build_info, job)"),
            variable("instance", "Instance", 'label_values(stormbroker_build_info{job=~"$job"}, instance)'),
            variable("account", "Account",
                     'label_values(stormbroker_account_state{job=~"$job", instance=~"$instance"}, account)'),
        ]},
        "panels": panels,
    }


def main():
    text = json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"
    path = os.path.join(HERE, "stormbroker.json")
    if sys.argv[1:] == ["--check"]:
        with open(path, encoding="utf-8") as f:
            if f.read() != text:
                sys.exit(f"{path} is stale: run {sys.argv[0]}")
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
