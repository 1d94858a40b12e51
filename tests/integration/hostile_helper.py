#!/usr/bin/python3
"""A hostile local caller, as a process of its own (the tests run it as
another uid through setpriv). One number per line on stdout, in order.

Usage:
  hostile_helper.py flood SOCKET N          open N connections and hold them; print how many
                                            connected, then how many the broker closed once
                                            N - 1024 were (or 10 s), then once all N were (or 20 s)
  hostile_helper.py calls SOCKET ACCOUNT METHOD N
                                            N calls at once; print how many succeeded, then
                                            how many were refused RESOURCE_EXHAUSTED
  hostile_helper.py denied SOCKET ACCOUNT N  N calls one after another, then one with 60
                                            parameter names of 1000 characters; print how many
                                            were refused PERMISSION_DENIED
  hostile_helper.py send-and-close HOST PORT ACCOUNT METHOD N [WAIT]
                                            N connections to the HTTP door, each sending a
                                            complete request and closing at once (after WAIT
                                            seconds connected, when given); print N
  hostile_helper.py hold HOST PORT N         N idle TCP connections, held; print how many connected
Needs BUILD_DIR/python on PYTHONPATH.
"""
import base64
import concurrent.futures
import resource
import socket
import sys
import time

import grpc

from google.protobuf import struct_pb2
from stormbroker.v1 import broker_pb2, broker_pb2_grpc


def closed_by_broker(conns):
    closed = 0
    for conn in conns:
        try:
            while conn.recv(4096, socket.MSG_DONTWAIT):
                pass  # what the broker said first (gRPC's SETTINGS) is not the point
            closed += 1  # recv returned b"": the broker closed it
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def flood(path, count):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    conns = []
    for _ in range(count):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
        except OSError:
            break
        conns.append(conn)
    print(len(conns), flush=True)
    for want, seconds in ((count - 1024, 10), (count, 20)):
        deadline = time.monotonic() + seconds
        closed = closed_by_broker(conns)
        while closed < want and time.monotonic() < deadline:
            time.sleep(0.1)
            closed = closed_by_broker(conns)
        print(closed, flush=True)
    time.sleep(3600)


def broker_at(path):
    return broker_pb2_grpc.BrokerStub(grpc.insecure_channel("unix:" + path))


def calls(path, account, method, count):
    broker = broker_at(path)

    def one(_):
        try:
            broker.Call(broker_pb2.CallRequest(account=account, method=method), timeout=30)
            return "ok"
        except grpc.RpcError as error:
            return error.code().name

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        outcomes = list(pool.map(one, range(count)))
    print(outcomes.count("ok"))
    print(outcomes.count("RESOURCE_EXHAUSTED"))


def denied(path, account, count):
    broker = broker_at(path)
    refused = 0
    fat = struct_pb2.Struct()
    for i in range(60):
        fat[str(i) + "p" * 1000] = 1
    requests = [broker_pb2.CallRequest(account=account, method="Utilities/Info/ping")] * count
    requests.append(broker_pb2.CallRequest(account=account, method="Utilities/Info/ping", params=fat))
    for request in requests:
        try:
            broker.Call(request, timeout=30)
        except grpc.RpcError as error:
            refused += error.code() == grpc.StatusCode.PERMISSION_DENIED
    print(refused)


def send_and_close(host, port, account, method, count, wait):
    request = ("POST /v1/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Basic %s\r\n"
               "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}" %
               (method, port, base64.b64encode((account + ":x").encode()).decode(), ))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    conns = []
    for _ in range(count):
        conn = socket.socket(family, socket.SOCK_STREAM)
        conn.connect((host, port))
        conns.append(conn)
    print("connected", flush=True)
    time.sleep(wait)
    for conn in conns:
        conn.sendall(request.encode())
        conn.close()  # an orphan now: the kernel names its owner uid 0
    print(count, flush=True)


def hold(host, port, count):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    conns = []
    for _ in range(count):
        conn = socket.socket(family, socket.SOCK_STREAM)
        try:
            conn.connect((host, port))
        except OSError:
            break
        conns.append(conn)
    print(len(conns), flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "hold":
        hold(path, int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "send-and-close":
        send_and_close(path, int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]),
                       float(sys.argv[7]) if len(sys.argv) > 7 else 0)
    elif mode == "flood":
        flood(path, int(sys.argv[3]))
    elif mode == "calls":
        calls(path, sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        denied(path, sys.argv[3], int(sys.argv[4]))
