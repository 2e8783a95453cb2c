#!/usr/bin/python3
"""decode_fetch.py — fetch from brokerd with Python's protobuf library.

Proves that what brokerd puts on the wire (including its zero-copy fetch
responses, whose records field is sent straight from the segment file) is
plain protobuf: the module is generated from proto/broker.proto with protoc,
nothing else is shared with the C code.

Usage: decode_fetch.py PROTO_DIR PORT TOPIC PARTITION OFFSET
Prints: "<error> <high_watermark> <next_offset> <records as hex>"
"""
import importlib
import os
import socket
import struct
import subprocess
import sys
import tempfile


def main():
    proto_dir, port, topic, partition, offset = sys.argv[1:6]
    out = tempfile.mkdtemp(prefix="brokerd-py-")
    subprocess.run(["protoc", "-I", proto_dir, "--python_out", out,
                    os.path.join(proto_dir, "broker.proto")], check=True)
    sys.path.insert(0, out)
    pb = importlib.import_module("broker_pb2")

    req = pb.Request(correlation_id=77, client_id="python")
    req.fetch.topic = topic
    req.fetch.partition = int(partition)
    req.fetch.offset = int(offset)
    req.fetch.max_bytes = 1 << 20
    body = req.SerializeToString()
    with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as s:
        s.sendall(struct.pack(">I", len(body)) + body)
        (n,) = struct.unpack(">I", recv_all(s, 4))
        resp = pb.Response()
        resp.ParseFromString(recv_all(s, n))
    assert resp.correlation_id == 77, resp.correlation_id
    assert resp.WhichOneof("op") in ("fetch", None)
    f = resp.fetch
    print(resp.error, f.high_watermark, f.next_offset, f.records.hex() or "-")


def recv_all(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


if __name__ == "__main__":
    main()
