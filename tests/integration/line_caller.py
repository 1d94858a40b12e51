#!/usr/bin/python3
"""A well-behaved caller of the broker, as a process of its own (tests run it
as another uid through setpriv), that says how long its calls waited.

Usage:
  line_caller.py DOOR TARGET ACCOUNT METHOD MODE N [--seconds S] [--deadline D]
                 [--wait W] [--go FILE]
MODE says what the N calls do:
  load      keep N calls in flight for S seconds; prints "started" once the
            first N are sent
  sequence  N calls one after another
  burst     N calls at once, once each
  abandon   N calls at once, each given up (cancelled, or its HTTP connection
            closed) after W seconds
With --distinct each call has params of its own ({"page_num": K}, K counting
from 1), so that no two are the same question for the broker's cache.
DOOR is grpc (TARGET the broker's socket) or http (TARGET the HTTP door's Unix
socket). D (seconds, default 30) bounds each call (gRPC's deadline; the HTTP
door's X-Stormbroker-Timeout, and the client's socket timeout). With --go the caller
prints "ready" once connected and starts when FILE exists. At the end it
prints one JSON line: {"ok": N, "failed": {"CODE": N}, "latencies_ms": [...],
"done_at": [...] (wall-clock seconds, both for the ok calls, in order),
"retry_after_ms": [...] (what refusals asked)}.
Needs BUILD_DIR/python on PYTHONPATH.
"""
import argparse
import http.client
import itertools
import json
import os
import socket
import sys
import threading
import time

import grpc

from stormbroker.v1 import broker_pb2, broker_pb2_grpc


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("broker", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


# Params for each call: the same empty ones, or with --distinct one's own.
PAGES = None


def next_params():
    return {"page_num": next(PAGES)} if PAGES else {}


class GrpcDoor:
    def __init__(self, target, account, method):
        self.channel = grpc.insecure_channel("unix:" + target)
        self.stub = broker_pb2_grpc.BrokerStub(self.channel)
        self.account, self.method = account, method

    def next_request(self):
        request = broker_pb2.CallRequest(account=self.account, method=self.method)
        request.params.update(next_params())
        return request

    def connect(self):
        grpc.channel_ready_future(self.channel).result(timeout=10)

    def call(self, deadline):
        """(outcome, retry_after_ms or None)"""
        try:
            # The answer is left unread on purpose: the report says only
            # whether and when it came.
            self.stub.Call(self.next_request(), timeout=deadline)
            return "ok", None
        except grpc.RpcError as error:
            pushback = dict(error.trailing_metadata() or ()).get("grpc-retry-pushback-ms")
            return error.code().name, int(pushback) if pushback else None

    def abandon(self, wait):
        # Sent, then given up while it waits in the broker's line: the
        # cancellation is what the test watches for.
        future = self.stub.Call.future(self.next_request(), timeout=60)
        time.sleep(wait)
        future.cancel()


class HttpDoor:
    def __init__(self, target, account, method):
        self.target, self.path = target, "/v1/" + method
        self.headers = {"Content-Type": "application/json", "X-Stormbroker-Account": account}
        self.local = threading.local()

    def connect(self):
        pass  # a connection per thread, made at its first call

    def call(self, deadline):
        # One keep-alive connection per thread, as a pooled HTTP client keeps.
        if getattr(self.local, "connection", None) is None:
            self.local.connection = UnixHTTPConnection(self.target, deadline)
        connection = self.local.connection
        headers = dict(self.headers)
        headers["X-Stormbroker-Timeout"] = str(deadline)
        try:
            connection.request("POST", self.path, body=json.dumps({"params": next_params()}), headers=headers)
            reply = connection.getresponse()
            body = reply.read()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            self.local.connection = None
            return type(error).__name__, None
        if reply.status == 200 and b"error_class" not in body:
            return "ok", None
        after = reply.getheader("Retry-After")
        return "HTTP_%d" % reply.status, int(after) * 1000 if after else None

    def abandon(self, wait):
        connection = UnixHTTPConnection(self.target, 60)
        connection.request("POST", self.path, body=json.dumps({"params": next_params()}), headers=self.headers)
        time.sleep(wait)
        connection.sock.shutdown(socket.SHUT_RDWR)
        connection.close()


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok, self.failed, self.latencies, self.done_at, self.retry_after = 0, {}, [], [], []

    def one(self, door, deadline):
        started = time.monotonic()
        outcome, after = door.call(deadline)
        with self.lock:
            if outcome == "ok":
                self.ok += 1
                self.latencies.append(round((time.monotonic() - started) * 1000, 1))
                self.done_at.append(time.time())
            else:
                self.failed[outcome] = self.failed.get(outcome, 0) + 1
            if after is not None:
                self.retry_after.append(after)

    def report(self):
        print(json.dumps({"ok": self.ok, "failed": self.failed, "latencies_ms": self.latencies,
                          "done_at": self.done_at, "retry_after_ms": self.retry_after}), flush=True)


def load(door, count, seconds, deadline):
    tally = Tally()
    end = time.monotonic() + seconds
    started = threading.Barrier(count + 1)

    def worker():
        started.wait()
        while time.monotonic() < end:
            tally.one(door, deadline)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    started.wait()
    print("started", flush=True)
    for thread in threads:
        thread.join()
    tally.report()


def sequence(door, count, deadline):
    tally = Tally()
    for _ in range(count):
        tally.one(door, deadline)
    tally.report()


def burst(door, count, deadline):
    tally = Tally()
    threads = [threading.Thread(target=tally.one, args=(door, deadline)) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally.report()


def abandon(door, count, wait):
    threads = [threading.Thread(target=door.abandon, args=(wait,)) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"abandoned": count}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    for name in ("door", "target", "account", "method"):
        parser.add_argument(name)
    parser.add_argument("mode", choices=("load", "sequence", "burst", "abandon"))
    parser.add_argument("n", type=int)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--deadline", type=float, default=30)
    parser.add_argument("--wait", type=float, default=0.5)
    parser.add_argument("--go")
    parser.add_argument("--distinct", action="store_true")
    args = parser.parse_args()
    if args.distinct:
        global PAGES
        PAGES = itertools.count(1)
    door = (GrpcDoor if args.door == "grpc" else HttpDoor)(args.target, args.account, args.method)
    if args.go:
        door.connect()
        print("ready", flush=True)
        while not os.path.exists(args.go):
            time.sleep(0.005)
    if args.mode == "load":
        load(door, args.n, args.seconds, args.deadline)
    elif args.mode == "sequence":
        sequence(door, args.n, args.deadline)
    elif args.mode == "burst":
        burst(door, args.n, args.deadline)
    else:
        abandon(door, args.n, args.wait)


if __name__ == "__main__":
    main()
