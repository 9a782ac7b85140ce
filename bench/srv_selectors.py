"""Baseline: the echo server of Python's `selectors` documentation, with the
rest of a send that came up short kept for EVENT_WRITE.

    python3 bench/srv_selectors.py [--addr HOST:PORT]

Prints `listening on ADDR` (port 0, the default, lets the kernel pick)."""

import selectors
import socket
import sys

sel = selectors.DefaultSelector()
unsent = {}


def accept(sock, mask):
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sel.register(conn, selectors.EVENT_READ, read)


def close(conn):
    unsent.pop(conn, None)
    sel.unregister(conn)
    conn.close()


def read(conn, mask):
    try:
        data = conn.recv(65536)
        if not data:
            return close(conn)
        sent = conn.send(data)
    except BlockingIOError:
        return
    except OSError:
        return close(conn)
    if sent < len(data):
        unsent[conn] = data[sent:]
        sel.modify(conn, selectors.EVENT_WRITE, write)


def write(conn, mask):
    try:
        sent = conn.send(unsent[conn])
    except BlockingIOError:
        return
    except OSError:
        return close(conn)
    unsent[conn] = unsent[conn][sent:]
    if not unsent[conn]:
        del unsent[conn]
        sel.modify(conn, selectors.EVENT_READ, read)


def main():
    addr = "127.0.0.1:0"
    if sys.argv[1:2] == ["--addr"]:
        addr = sys.argv[2]
    host, port = addr.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(1024)
    sock.setblocking(False)
    sel.register(sock, selectors.EVENT_READ, accept)
    print("listening on %s:%d" % sock.getsockname(), flush=True)
    while True:
        for key, mask in sel.select():
            key.data(key.fileobj, mask)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
