#!/usr/bin/python3
"""Restarts stormbrokerd under callers that never pause, as systemd would.

Holds the daemon's listening sockets as systemd does (socket activation:
LISTEN_FDS and LISTEN_FDNAMES; NOTIFY_SOCKET to see READY=1), starts
stormbrokerd on them, and restarts it RESTARTS times (SIGTERM, wait for the
exit, start the next) while these callers run:
  grpc       Python's grpcio on one channel, default call options, calling
             every 5 ms: reads its connection only during its own calls
  grpc-idle  the same in a process of its own, calling every 1.5 s: idle
             when most restarts begin, with nothing else in its process
             polling for it (gRPC then reads a connection at its backup
             poll, every 5 s)
  http       the HTTP door, a new connection per call, every 5 ms
Every call is Utilities/Info/ping on ACCOUNT. Prints one JSON object: the
calls and failures of each kind, restart_gap_ms (the longest call that
overlapped a restart, from SIGTERM to the next READY=1), ready_ms (exec to
READY=1) and stop_ms (SIGTERM to exit).

  restart_under_callers.py STORMBROKERD CONFIG WORK_DIR [--restarts N]
      [--account NAME] [--check]

--check exits 1 when a call failed: the test's verdict (systemd_test.cc);
bench/run prints the numbers. CONFIG should keep its
token (state_dir, expire_on_shutdown: false); its listen sockets are not
used: the held ones are WORK_DIR/restart.sock (gRPC) and
WORK_DIR/restart-http.sock. Needs BUILD_DIR/python on PYTHONPATH.
"""
import argparse
import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

import grpc

from stormbroker.v1 import broker_pb2, broker_pb2_grpc

# The idle caller's own process: calls, and writes each as a JSON line.
if len(sys.argv) == 5 and sys.argv[1] == "--idle-caller":
    _, _, socket_path, account, stop_path = sys.argv
    stub = broker_pb2_grpc.BrokerStub(grpc.insecure_channel("unix:" + socket_path))
    while not os.path.exists(stop_path):
        start = time.monotonic()
        try:
            response = stub.Call(broker_pb2.CallRequest(account=account, method="Utilities/Info/ping"))
            call = [start, time.monotonic(), not response.HasField("error"), str(response.error)]
        except grpc.RpcError as error:
            call = [start, time.monotonic(), False, "%s: %s" % (error.code().name, error.details())]
        print(json.dumps(call), flush=True)
        time.sleep(1.5)
    sys.exit(0)

parser = argparse.ArgumentParser()
parser.add_argument("daemon")
parser.add_argument("config")
parser.add_argument("work")
parser.add_argument("--restarts", type=int, default=5)
parser.add_argument("--account", default="prod")
parser.add_argument("--check", action="store_true")
args = parser.parse_args()

grpc_path = os.path.join(args.work, "restart.sock")
http_path = os.path.join(args.work, "restart-http.sock")
notify_path = os.path.join(args.work, "restart-notify.sock")


def bound(path, kind):
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, kind)
    sock.bind(path)
    return sock


held = [bound(grpc_path, socket.SOCK_STREAM), bound(http_path, socket.SOCK_STREAM)]
for sock in held:
    sock.listen(4096)
notify = bound(notify_path, socket.SOCK_DGRAM)
notify.settimeout(30)
log = open(os.path.join(args.work, "restart.log"), "a")


def start_daemon():
    """Starts the daemon on the held sockets, as fds 3 and 4; returns it once
    it said READY=1, with the seconds that took."""
    started = time.monotonic()
    fds = [sock.fileno() for sock in held]

    def as_systemd_passes_them():  # in the child
        high = [os.dup(fd) for fd in fds]  # out of the way of 3 and 4
        for target, fd in enumerate(high, start=3):
            os.dup2(fd, target)  # inheritable

    env = dict(os.environ, LISTEN_FDS="2", LISTEN_FDNAMES="grpc:http", NOTIFY_SOCKET=notify_path)
    # LISTEN_PID must be the daemon's own pid: the shell's, which exec keeps.
    daemon = subprocess.Popen(["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', args.daemon, "--config", args.config],
                              env=env, preexec_fn=as_systemd_passes_them, close_fds=False, stderr=log)
    while "READY=1" not in notify.recv(4096).decode().split("\n"):
        pass
    return daemon, time.monotonic() - started


calls = []  # (kind, start, end, ok, detail), monotonic seconds
calls_lock = threading.Lock()
stop = threading.Event()


def record(kind, start, ok, detail):
    with calls_lock:
        calls.append((kind, start, time.monotonic(), ok, detail))


def grpc_caller(kind, pause):  # in this process
    stub = broker_pb2_grpc.BrokerStub(grpc.insecure_channel("unix:" + grpc_path))
    while not stop.is_set():
        start = time.monotonic()
        try:
            response = stub.Call(broker_pb2.CallRequest(account=args.account, method="Utilities/Info/ping"))
            record(kind, start, not response.HasField("error"), str(response.error))
        except grpc.RpcError as error:
            record(kind, start, False, "%s: %s" % (error.code().name, error.details()))
        stop.wait(pause)


class UnixHTTPConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(http_path)


def http_caller():
    basic = "Basic " + base64.b64encode((args.account + ":x").encode()).decode()
    while not stop.is_set():
        start = time.monotonic()
        try:
            connection = UnixHTTPConnection("localhost", timeout=30)
            connection.request("POST", "/v1/Utilities/Info/ping", body=b'{"params":{}}',
                               headers={"Authorization": basic, "Connection": "close"})
            response = connection.getresponse()
            body = response.read()
            record("http", start, response.status == 200, "%d %s" % (response.status, body[:200]))
            connection.close()
        except OSError as error:
            record("http", start, False, str(error))
        stop.wait(0.005)


daemon, _ = start_daemon()
idle_stop = os.path.join(args.work, "restart-idle-stop")
if os.path.exists(idle_stop):
    os.unlink(idle_stop)
idle = subprocess.Popen([sys.executable, __file__, "--idle-caller", grpc_path, args.account, idle_stop],
                        stdout=subprocess.PIPE, text=True)
callers = [threading.Thread(target=grpc_caller, args=("grpc", 0.005)),
           threading.Thread(target=http_caller)]
for thread in callers:
    thread.start()
time.sleep(0.5)
restarts, ready, stopped = [], [], []  # (SIGTERM, next READY), seconds, seconds
for _ in range(args.restarts):
    stopping = time.monotonic()
    daemon.terminate()
    daemon.wait()
    stopped.append(time.monotonic() - stopping)
    daemon, ready_s = start_daemon()
    restarts.append((stopping, time.monotonic()))
    ready.append(ready_s)
    time.sleep(0.3)
time.sleep(0.3)
stop.set()
for thread in callers:
    thread.join()
open(idle_stop, "w").close()
for line in idle.communicate()[0].splitlines():
    start, end, ok, detail = json.loads(line)
    calls.append(("grpc-idle", start, end, ok, detail))
daemon.terminate()
daemon.wait()

during = [end - start for _, start, end, _, _ in calls if any(start <= until and end >= since for since, until in restarts)]
summary = {"restarts": args.restarts,
           "restart_gap_ms": round(1000 * max(during), 1) if during else None,
           "ready_ms_median": round(1000 * sorted(ready)[len(ready) // 2], 1),
           "ready_ms_max": round(1000 * max(ready), 1),
           "stop_ms_max": round(1000 * max(stopped), 1)}
for kind in ("grpc", "grpc-idle", "http"):
    mine = [c for c in calls if c[0] == kind]
    summary[kind + "_calls"] = len(mine)
    summary[kind + "_failed"] = sum(1 for c in mine if not c[3])
for kind, start, end, _, detail in [c for c in calls if not c[3]][:10]:
    print("failed %s call after %.0f ms: %s" % (kind, 1000 * (end - start), detail), file=sys.stderr)
print(json.dumps(summary))
if args.check:
    failed = sum(summary[kind + "_failed"] for kind in ("grpc", "grpc-idle", "http"))
    sys.exit(1 if failed or not all(summary[k + "_calls"] for k in ("grpc", "grpc-idle", "http")) else 0)
