#!/usr/bin/env python3
"""corecast benchmark peer: socketify.py (uWebSockets C++ core) with native topics.

Usage: socketify_server.py --port P [--host 127.0.0.1] [--compression off|shared]

Pub/sub is uWS's own: `ws.subscribe(channel)` / `ws.unsubscribe(channel)` and
`app.publish(channel, frame, OpCode.TEXT)`. The message text is built once per
publish (raw `data` spliced in, see peer_protocol.py) and uWS fans it out to
every subscriber in C++ (App.publish, unlike WebSocket.publish in uWS C++,
includes the publisher when it is subscribed). uWS keeps the topic tree and
drops a connection's subscriptions when it closes. Only parsing the request
and building the reply strings runs in Python.

CPU note: socketify drives the libuv loop from an asyncio loop
(socketify/loop.py `Loop._keep_alive`): while there is traffic it calls
`uv_run(NOWAIT)` from `call_soon` in a tight loop, i.e. it BUSY-POLLS one core
at 100% until ~10k idle iterations have passed, then polls every 1 ms, then
every `idle_relaxation_time` (10 ms). Measured here: a trickle of 100
messages/s keeps it at 100% of a core; fully idle about 1%. Read its CPU use
(and on 2 cores, the CPU left for the load generator) with that in mind.

Compression (`--compression shared`, for compare.sh --compressed): uWS's
SHARED_COMPRESSOR, one deflate stream per event loop reset after every
message (no context takeover, as corecast), and `App.publish(...,
compress=True)`, so a publish is compressed once and the compressed frame
sent to every subscriber that negotiated permessage-deflate (uWS keeps a
plain copy for the others); corecast's counterpart is `--compression on`.

Settings aligned with corecast's defaults: no compression, 1 MiB max message,
1 MiB max backpressure with close_on_backpressure_limit (corecast closes a
slow consumer at 1 MiB queued), automatic pings with a 60 s idle timeout.
GET /health answers 200; other plain HTTP requests 404.

Shutdown: SIGTERM/SIGINT send every open WebSocket a 1001 "server shutting
down" close, close the listen socket and stop the loop; the process exits 0.
To reach the open sockets, open/close handlers keep a dict keyed by the
native uws_websocket_t pointer (socketify makes a new Python wrapper per
callback). That tracking costs one dict insert/pop per connection only.
"""

import itertools
import signal
import sys

from socketify import App, AppListenOptions, CompressOptions, OpCode

import peer_protocol as proto

_ids = itertools.count()
# native uws_websocket_t* -> WebSocket wrapper, for the shutdown close only
_open = {}


def echo_open(ws):
    _open[ws.ws] = ws


def ws_open(ws):
    _open[ws.ws] = ws
    ws.send(proto.connection_established(f"0-{next(_ids)}"), OpCode.TEXT)


def ws_close(ws, code, message):
    _open.pop(ws.ws, None)


def echo_message(ws, message, opcode):
    # socketify hands text frames over as str and binary ones as bytes.
    ws.send(message, opcode)


def make_pubsub_message(app, compress):
    def publish(channel, frame, opcode):
        app.publish(channel, frame, opcode, compress)

    def pubsub_message(ws, text, opcode):
        if opcode != OpCode.TEXT:
            ws.send(proto.BINARY_NOT_SUPPORTED, OpCode.TEXT)
            return
        try:
            kind, channel, raw_data, raw_id = proto.parse(text)
        except proto.ProtocolError as e:
            ws.send(e.reply, OpCode.TEXT)
            return
        if kind == proto.PUBLISH:
            publish(channel, proto.message_frame(channel, raw_data), OpCode.TEXT)
            if raw_id is not None:
                ws.send(proto.channel_reply("published", channel, raw_id), OpCode.TEXT)
        elif kind == proto.SUBSCRIBE:
            ws.subscribe(channel)
            ws.send(proto.channel_reply("subscribed", channel, raw_id), OpCode.TEXT)
        elif kind == proto.UNSUBSCRIBE:
            ws.unsubscribe(channel)
            ws.send(proto.channel_reply("unsubscribed", channel, raw_id), OpCode.TEXT)
        else:  # heartbeat
            ws.send(proto.heartbeat(raw_id), OpCode.TEXT)

    return pubsub_message


def health(res, req):
    res.write_header("Content-Type", "application/json")
    res.end('{"status":"ok"}\n')


def not_found(res, req):
    res.write_status(404).end("not found\n")


def main(args):
    app = App()
    shared = args.compression == "shared"
    behavior = {
        "compression": CompressOptions.SHARED_COMPRESSOR if shared else CompressOptions.DISABLED,
        "max_payload_length": 1 << 20,
        "max_backpressure": 1 << 20,
        "close_on_backpressure_limit": True,
        "idle_timeout": 60,
        "send_pings_automatically": True,
    }
    app.ws("/echo", {**behavior, "open": echo_open, "close": ws_close,
                     "message": echo_message})
    app.ws("/ws", {**behavior, "open": ws_open, "close": ws_close,
                   "message": make_pubsub_message(app, shared)})
    app.get("/health", health)
    app.any("/*", not_found)

    def on_listen(config):
        print(f"listening port={config.port}", file=sys.stderr, flush=True)

    # options=1 is LIBUS_LISTEN_EXCLUSIVE_PORT: no SO_REUSEPORT (uSockets sets it
    # by default), so a second peer on a busy port fails instead of sharing it.
    app.listen(AppListenOptions(port=args.port, host=args.host, options=1), on_listen)
    if getattr(app, "socket", None) is None:  # the listen callback raised
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr)
        sys.exit(1)

    def shutdown(*_):
        for ws in list(_open.values()):
            ws.end(1001, "server shutting down")  # uWS writes the close frame now
        _open.clear()
        app.close()  # listen socket closed, loop stopped: app.run() returns

    signal.signal(signal.SIGTERM, shutdown)
    # app.run() installs socketify's own SIGINT handler (close + exit(0));
    # put ours back once the loop is running.
    app.loop.loop.call_soon(signal.signal, signal.SIGINT, shutdown)
    app.run()


if __name__ == "__main__":
    main(proto.parse_args(sys.argv[1:], "socketify_server", compression=True))
