"""A grpcio echo service and client for the gateway's gRPC tests (tests/it/grpc.rs).

No generated code: the methods take and return raw bytes.

    echo.py serve            binds 127.0.0.1:0, prints the port, serves until stdin closes
    echo.py call TARGET SERVICE unary|stream [TOKEN]
                             calls SERVICE through TARGET and prints one JSON line: the
                             status code name, its details, the messages and the trailing
                             metadata
"""

import json
import sys
from concurrent import futures

import grpc

SERVICES = ("echo.Echo", "admin.Echo", "dead.Echo")


def seen(context):
    """What the backend received, as the message it answers with."""
    metadata = dict(context.invocation_metadata())
    return json.dumps(
        {
            "user_id": metadata.get("x-user-id"),
            "session_id": metadata.get("x-session-id"),
            "authorization": metadata.get("authorization") is not None,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def unary(request, context):
    context.set_trailing_metadata((("x-echo-trailer", "unary:" + request.decode()),))
    return seen(context)


def stream(request, context):
    for i in range(3):
        yield b"%s:%d" % (request, i)
    yield seen(context)
    context.set_trailing_metadata((("x-echo-trailer", "stream:" + request.decode()),))


def serve():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    }
    server.add_generic_rpc_handlers(
        tuple(grpc.method_handlers_generic_handler(name, handlers) for name in SERVICES)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    server.stop(grace=None)


def call(target, service, method, token):
    metadata = [("x-user-id", "user_spoofed")]
    if token:
        metadata.append(("authorization", "Bearer " + token))
    with grpc.insecure_channel(target) as channel:
        if method == "unary":
            rpc = channel.unary_unary("/%s/Unary" % service)
            try:
                reply, call = rpc.with_call(b"hello", metadata=metadata, timeout=10)
                messages, code, details, trailers = [reply], call.code(), call.details(), call.trailing_metadata()
            except grpc.RpcError as error:
                messages, code, details, trailers = [], error.code(), error.details(), error.trailing_metadata()
        else:
            call = channel.unary_stream("/%s/Stream" % service)(b"hello", metadata=metadata, timeout=10)
            messages = []
            try:
                messages.extend(call)
            except grpc.RpcError:
                pass
            code, details, trailers = call.code(), call.details(), call.trailing_metadata()
    print(
        json.dumps(
            {
                "code": code.name,
                "details": details,
                "messages": [m.decode() for m in messages],
                "trailers": {k: v for k, v in (trailers or ())},
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        call(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None)
