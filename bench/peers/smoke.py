"""Smoke test for the reference peers; run by scripts/peers-smoke.sh.

Starts each peer on a free loopback port, one at a time, checks /health,
/echo and the /ws protocol with the `websockets` sync client, then sends
SIGTERM (with a client still connected) and checks that the peer exits 0.
Every wait has a timeout. Prints one line per check and `N passed, M failed`.
"""

import ctypes
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from websockets.sync.client import connect

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable  # the venv's python
PEERS = {
    "python_websockets": [PY, os.path.join(HERE, "python_websockets.py")],
    "socketify": [PY, os.path.join(HERE, "socketify_server.py")],
    "node_ws": ["node", os.path.join(HERE, "node_ws", "server.js")],
}
START_TIMEOUT = 10.0
RECV_TIMEOUT = 3.0
EXIT_TIMEOUT = 5.0

passed = 0
failed = 0


def report(peer, name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    line = f"{'PASS' if ok else 'FAIL'} {peer}: {name}"
    print(line + (f" ({detail})" if detail else ""), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent():
    # Linux: the peer gets SIGKILL if this driver dies (e.g. the outer timeout).
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Peer:
    def __init__(self, name, argv, port):
        self.name = name
        self.port = port
        self.lines = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            argv + ["--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=die_with_parent,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if line.strip() == f"listening port={self.port}":
                self.ready.set()

    def stderr_tail(self):
        return " | ".join(self.lines[-5:])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=EXIT_TIMEOUT)


def recv_json(ws):
    return json.loads(ws.recv(timeout=RECV_TIMEOUT))


def check(peer, name, fn):
    """Runs fn(); a falsy/str result or an exception is a failure."""
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 - any error is a failed check
        report(peer, name, False, f"{type(e).__name__}: {e}")
        return False
    if result is True:
        report(peer, name, True)
        return True
    report(peer, name, False, str(result))
    return False


def expect(got, want):
    return True if got == want else f"got {got!r}, want {want!r}"


def smoke(name, argv):
    port = free_port()
    peer = Peer(name, argv, port)
    base = f"ws://127.0.0.1:{port}"
    try:
        started = peer.ready.wait(START_TIMEOUT)
        if not started:
            rc = peer.proc.poll()
            report(name, "start", False,
                   f"no 'listening port={port}' within {START_TIMEOUT:.0f} s; "
                   f"rc={rc}; stderr: {peer.stderr_tail()}")
            return
        report(name, "start", True, f"listening port={port}")

        def health():
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=RECV_TIMEOUT)
            try:
                c.request("GET", "/health")
                return expect(c.getresponse().status, 200)
            finally:
                c.close()

        check(name, "GET /health -> 200", health)

        def echo():
            with connect(base + "/echo", open_timeout=RECV_TIMEOUT, close_timeout=1) as ws:
                text = 'héllo {"x": 1}'
                ws.send(text)
                got_text = ws.recv(timeout=RECV_TIMEOUT)
                blob = bytes(range(256)) * 4
                ws.send(blob)
                got_blob = ws.recv(timeout=RECV_TIMEOUT)
            if got_text != text:
                return f"text: got {got_text!r}"
            if got_blob != blob:
                return f"binary: got {type(got_blob).__name__} of {len(got_blob)} bytes"
            return True

        check(name, "/echo text and binary", echo)

        # a stays open across the SIGTERM below on purpose; b is closed first.
        with connect(base + "/ws", open_timeout=RECV_TIMEOUT, close_timeout=1) as a:
            with connect(base + "/ws", open_timeout=RECV_TIMEOUT, close_timeout=1) as b:
                ws_checks(name, a, b)
            sigterm(name, peer)
    except Exception as e:  # noqa: BLE001
        report(name, "run", False, f"{type(e).__name__}: {e}; stderr: {peer.stderr_tail()}")
    finally:
        peer.kill()


def ws_checks(name, a, b):
    def greeting():
        ga, gb = recv_json(a), recv_json(b)
        for g in (ga, gb):
            if g.get("type") != "connection_established" or g.get("shard") != 0 \
                    or not isinstance(g.get("connection_id"), str):
                return f"greeting {g!r}"
        if ga["connection_id"] == gb["connection_id"]:
            return f"two connections share id {ga['connection_id']!r}"
        return True

    check(name, "/ws greeting", greeting)

    def subscribe():
        a.send('{"type":"subscribe","channel":"smoke/é"}')
        b.send('{"type":"subscribe","channel":"smoke/é","id":"s1"}')
        ra, rb = recv_json(a), recv_json(b)
        r = expect(ra, {"type": "subscribed", "channel": "smoke/é"})
        if r is not True:
            return r
        return expect(rb, {"type": "subscribed", "channel": "smoke/é", "id": "s1"})

    check(name, "subscribe -> subscribed", subscribe)

    def publish():
        data = {"n": 1, "s": "héllo", "l": [1, 2, None]}
        a.send(json.dumps({"type": "publish", "channel": "smoke/é",
                           "data": data, "id": 42}))
        # The publisher is subscribed: it gets the message and the
        # published ack (in either order); b gets the message once.
        got_a = sorted((recv_json(a), recv_json(a)), key=lambda m: m["type"])
        got_b = recv_json(b)
        msg = {"type": "message", "channel": "smoke/é", "data": data}
        r = expect(got_a, [msg, {"type": "published", "channel": "smoke/é", "id": 42}])
        if r is not True:
            return "publisher: " + r
        r = expect(got_b, msg)
        if r is not True:
            return "subscriber: " + r
        # No duplicate delivery: the next thing b sees is its heartbeat reply.
        b.send('{"type":"heartbeat"}')
        return expect(recv_json(b), {"type": "heartbeat"})

    check(name, "publish with id -> published + message to 2 subscribers", publish)

    def heartbeat():
        a.send('{"type":"heartbeat","id":"hb-1"}')
        return expect(recv_json(a), {"type": "heartbeat", "id": "hb-1"})

    check(name, "heartbeat -> heartbeat with id", heartbeat)

    def errors():
        a.send("not json")
        r = recv_json(a)
        if r.get("type") != "error" or r.get("code") != "INVALID_JSON":
            return f"not json: {r!r}"
        a.send('{"type":"dance","id":3}')
        r = recv_json(a)
        if r.get("code") != "UNKNOWN_MESSAGE_TYPE" or r.get("id") != 3:
            return f"unknown type: {r!r}"
        return True

    check(name, "errors INVALID_JSON / UNKNOWN_MESSAGE_TYPE", errors)


def sigterm(name, peer):
    t0 = time.monotonic()
    peer.proc.send_signal(signal.SIGTERM)
    try:
        rc = peer.proc.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        report(name, "SIGTERM -> exit", False,
               f"still running after {EXIT_TIMEOUT:.0f} s (a client connected)")
    else:
        took = time.monotonic() - t0
        report(name, "SIGTERM -> exit", rc == 0,
               f"rc={rc} after {took:.2f} s with a client connected"
               + ("" if rc == 0 else f"; stderr: {peer.stderr_tail()}"))


def main(argv):
    names = argv or list(PEERS)
    for n in names:
        if n not in PEERS:
            print(f"unknown peer {n!r}; known: {', '.join(PEERS)}", file=sys.stderr)
            return 2
    for n in names:
        smoke(n, PEERS[n])
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
