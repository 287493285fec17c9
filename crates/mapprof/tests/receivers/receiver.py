"""A loopback engine for mapprof's push tests: decodes what it receives with code that is not
mapprof's (Pyroscope's push.proto compiled by grpcio-tools; OTLP through the OpenTelemetry
project's `opentelemetry-proto` package, in otlp_decode.py) and logs each request as a JSON
line. It misbehaves on request, as engines do: POST /__mode with a body of

  ok         answer 200 (the default)
  503        answer 503 Service Unavailable
  garbage400 answer 400 with bytes that are not text
  stall      hold the request for 60 s, then close
  reset      close the connection at once, with a TCP reset

Usage: receiver.py LOG PORT_FILE [PORT]
"""

import base64
import json
import os
import socket
import struct
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))


def compile_push_proto():
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="mapprof-receiver-")
    proto = os.path.join(HERE, "proto")
    files = ["pyroscope/push/v1/push.proto", "pyroscope/types/v1/types.proto"]
    if protoc.main(["protoc", f"-I{proto}", f"--python_out={out}", *files]) != 0:
        raise SystemExit("protoc failed")
    sys.path.insert(0, out)
    from pyroscope.push.v1 import push_pb2

    return push_pb2


push_pb2 = compile_push_proto()
mode = {"now": "ok"}
log_lock = threading.Lock()
HEADERS = ["content-type", "authorization", "x-scope-orgid", "connect-protocol-version"]


def decode_pyroscope(body):
    request = push_pb2.PushRequest()
    request.ParseFromString(body)
    return [
        {
            "labels": {l.name: l.value for l in s.labels},
            "profiles": [base64.b64encode(x.raw_profile).decode() for x in s.samples],
        }
        for s in request.series
    ]


def decode_otlp(body):
    import otlp_decode

    return otlp_decode.summarize(body)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", content_type="application/proto"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path == "/__mode":
            mode["now"] = body.decode().strip()
            return self.answer(200, b"ok", "text/plain")
        now = mode["now"]
        record = {
            "at": time.time(),
            "path": self.path,
            "mode": now,
            "bytes": len(body),
            "headers": {h: self.headers.get(h) for h in HEADERS if self.headers.get(h)},
        }
        if now == "ok":
            if self.path == "/push.v1.PusherService/Push":
                record["series"] = decode_pyroscope(body)
            elif self.path == "/v1development/profiles":
                record["otlp"] = decode_otlp(body)
            else:
                record["mode"] = "unknown path"
        with log_lock, open(sys.argv[1], "a") as log:
            log.write(json.dumps(record) + "\n")
        if now == "ok":
            self.answer(200)
        elif now == "503":
            self.answer(503, b'{"code":"unavailable","message":"ingester is starting"}')
        elif now == "garbage400":
            self.answer(400, bytes(range(256)) * 4)
        elif now == "stall":
            time.sleep(60)
            self.close_connection = True
        elif now == "reset":
            # SO_LINGER 0: close() sends a RST instead of a FIN.
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            self.close_connection = True
        else:
            self.answer(500, b"unknown mode")


def main():
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    with open(sys.argv[2] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(sys.argv[2] + ".tmp", sys.argv[2])
    server.serve_forever()


if __name__ == "__main__":
    main()
