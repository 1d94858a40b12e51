#!/usr/bin/python3
"""Calls a Storm API method through stormbrokerd from Python.

Usage: ping.py SOCKET [ACCOUNT [METHOD]]
The stubs are generated from proto/ at build time: put BUILD_DIR/python on
PYTHONPATH. Uses Debian's python3-grpcio and python3-protobuf.
"""
import json
import os
import sys

import grpc
from google.protobuf import json_format

from stormbroker.v1 import broker_pb2, broker_pb2_grpc


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    socket = sys.argv[1]
    account = sys.argv[2] if len(sys.argv) > 2 else ""
    method = sys.argv[3] if len(sys.argv) > 3 else "Utilities/Info/ping"
    if not os.path.exists(socket):
        print(f"broker: no socket at {socket}: is stormbrokerd running?", file=sys.stderr)
        return 2
    with grpc.insecure_channel("unix:" + socket) as channel:
        stub = broker_pb2_grpc.BrokerStub(channel)
        try:
            # wait_for_ready: a broker that is restarting is waited for
            # (within the timeout) rather than failing the call at once.
            response = stub.Call(broker_pb2.CallRequest(account=account, method=method), timeout=30,
                                 wait_for_ready=True)
        except grpc.RpcError as error:
            print(f"broker: {error.code().name}: {error.details()}", file=sys.stderr)
            return 2
    if response.HasField("error"):
        print(json.dumps(json_format.MessageToDict(response.error)))
        return 3
    print(json.dumps(json_format.MessageToDict(response.result), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
