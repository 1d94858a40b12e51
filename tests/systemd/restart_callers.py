#!/usr/bin/python3
"""Callers that run without pause while the broker restarts under them: one
of each kind a build server has, each calling Utilities/Info/ping on account
prod in a loop until STOP_FILE exists, each call written to OUT as
"KIND START END ok|failed DETAIL" (times in seconds since the epoch).

  restart_callers.py GRPC_SOCKET STORMCTL HTTP_URL STOP_FILE OUT

- grpc: Python's grpcio on one channel, with default call options (no
  wait_for_ready, no retry policy): what a client written without the broker
  in mind does.
- grpc-retry: the same with the retry policy client/python/ping.py shows
  (UNAVAILABLE retried): what rides through a daemon killed with -9.
- stormctl: one process per call, with its defaults.
- curl: the HTTP door, one connection per call.
Needs BUILD_DIR/python on PYTHONPATH.
"""
import json
import os
import subprocess
import sys
import threading
import time

import grpc

from stormbroker.v1 import broker_pb2, broker_pb2_grpc

socket_path, stormctl, http_url, stop_file, out_path = sys.argv[1:6]
lock = threading.Lock()
out = open(out_path, "a", buffering=1)


def record(kind, start, ok, detail=""):
    with lock:
        out.write("%s %.3f %.3f %s %s\n" % (kind, start, time.time(), "ok" if ok else "failed",
                                             detail.replace("\n", " ")[:200]))


def grpc_caller(kind, options):
    channel = grpc.insecure_channel("unix:" + socket_path, options=options)
    stub = broker_pb2_grpc.BrokerStub(channel)
    while not os.path.exists(stop_file):
        start = time.time()
        try:
            response = stub.Call(broker_pb2.CallRequest(account="prod", method="Utilities/Info/ping"))
            record(kind, start, not response.HasField("error"), str(response.error) if response.HasField("error") else "")
        except grpc.RpcError as error:
            record(kind, start, False, "%s: %s" % (error.code().name, error.details()))
        time.sleep(0.02)


RETRY = json.dumps({"methodConfig": [{
    "name": [{"service": "stormbroker.v1.Broker"}],
    "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.1s", "maxBackoff": "1s", "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"]}}]})


def process_caller(kind, argv, expect):
    while not os.path.exists(stop_file):
        start = time.time()
        result = subprocess.run(argv, capture_output=True, text=True)
        ok = result.returncode == 0 and expect in result.stdout
        record(kind, start, ok, "" if ok else "exit %d: %s %s" % (result.returncode, result.stdout, result.stderr))
        time.sleep(0.02)


threads = [
    threading.Thread(target=grpc_caller, args=("grpc", [])),
    threading.Thread(target=grpc_caller, args=("grpc-retry", [("grpc.service_config", RETRY)])),
    threading.Thread(target=process_caller, args=("stormctl", [stormctl, "--socket", socket_path, "call", "--account",
                                                               "prod", "Utilities/Info/ping"], "success")),
    threading.Thread(target=process_caller, args=("curl", ["curl", "-s", "--max-time", "30", "-u", "prod:x",
                                                           "--data-binary", '{"params": {}}', http_url],
                                                  '"ping":"success"')),
]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
