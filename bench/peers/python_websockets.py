#!/usr/bin/env python3
"""corecast benchmark peer: Python `websockets` (asyncio server API) on uvloop.

The classic single-process asyncio design: one event loop, one coroutine per
connection (`async for message in ws`), a dict channel -> set of connections.

Usage: python_websockets.py --port P [--host 127.0.0.1]

Fan-out uses `websockets.broadcast()`, the library's documented way to send
one message to many connections: the message text is built once per publish
and UTF-8 encoded once by broadcast(), which then writes a frame to each
subscriber synchronously (so one publisher's messages stay in order). There
is no backpressure in broadcast() (its docs say so): a slow subscriber's
write buffer grows until its ping times out, unlike corecast's 1 MiB
slow-consumer close.

Settings aligned with corecast's defaults: no permessage-deflate, 1 MiB max
message, ping every 30 s. GET /health answers 200 from process_request;
other paths 404.
"""

import asyncio
import itertools
import signal
import sys
from http import HTTPStatus

import uvloop
from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed

import peer_protocol as proto

_ids = itertools.count()
# channel -> set of ServerConnection subscribed to it
channels: dict[str, set] = {}


def process_request(connection, request):
    path = request.path.split("?", 1)[0]
    if path == "/health":
        return connection.respond(HTTPStatus.OK, '{"status":"ok"}\n')
    if path not in ("/ws", "/echo"):
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
    return None  # go on with the WebSocket handshake


async def echo(ws):
    async for message in ws:  # str for text frames, bytes for binary
        await ws.send(message)


async def pubsub(ws):
    mine: set[str] = set()
    await ws.send(proto.connection_established(f"0-{next(_ids)}"))
    try:
        async for text in ws:
            if not isinstance(text, str):
                await ws.send(proto.BINARY_NOT_SUPPORTED)
                continue
            try:
                kind, channel, raw_data, raw_id = proto.parse(text)
            except proto.ProtocolError as e:
                await ws.send(e.reply)
                continue
            if kind == proto.PUBLISH:
                subs = channels.get(channel)
                if subs:
                    broadcast(subs, proto.message_frame(channel, raw_data))
                if raw_id is not None:
                    await ws.send(proto.channel_reply("published", channel, raw_id))
            elif kind == proto.SUBSCRIBE:
                channels.setdefault(channel, set()).add(ws)
                mine.add(channel)
                await ws.send(proto.channel_reply("subscribed", channel, raw_id))
            elif kind == proto.UNSUBSCRIBE:
                if channel in mine:
                    mine.discard(channel)
                    subs = channels[channel]
                    subs.discard(ws)
                    if not subs:
                        del channels[channel]
                await ws.send(proto.channel_reply("unsubscribed", channel, raw_id))
            else:  # heartbeat
                await ws.send(proto.heartbeat(raw_id))
    finally:
        for channel in mine:
            subs = channels.get(channel)
            if subs is not None:
                subs.discard(ws)
                if not subs:
                    del channels[channel]


async def handler(ws):
    try:
        if ws.request.path.split("?", 1)[0] == "/echo":
            await echo(ws)
        else:
            await pubsub(ws)
    except ConnectionClosed:
        pass


async def main(args):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(
        handler,
        args.host,
        args.port,
        process_request=process_request,
        compression=None,
        max_size=1 << 20,
        ping_interval=30,
        ping_timeout=30,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening port={port}", file=sys.stderr, flush=True)
        await stop
        # Leaving the block closes the listener and every connection (1001).


if __name__ == "__main__":
    uvloop.run(main(proto.parse_args(sys.argv[1:], "python_websockets")))
