#!/usr/bin/python3
"""What a generic gRPC tool sees of stormbrokerd: health and reflection.

Usage: grpc_probe.py health SOCKET SERVICE   prints SERVING, NOT_SERVING or the error code
       grpc_probe.py services SOCKET         prints the service names reflection lists
Needs BUILD_DIR/python on PYTHONPATH.
"""
import sys

import grpc

from stormbroker_probe import health_pb2, health_pb2_grpc, reflection_pb2, reflection_pb2_grpc


def health(socket, service):
    with grpc.insecure_channel("unix:" + socket) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        except grpc.RpcError as error:
            print(error.code().name)
            return
        print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def services(socket):
    with grpc.insecure_channel("unix:" + socket) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        for reply in stub.ServerReflectionInfo(iter([request]), timeout=10):
            for service in reply.list_services_response.service:
                print(service.name)


if __name__ == "__main__":
    if sys.argv[1] == "health":
        health(sys.argv[2], sys.argv[3])
    else:
        services(sys.argv[2])
