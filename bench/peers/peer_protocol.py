"""corecast's /ws JSON protocol (docs/protocol.md), shared by the two Python peers.

Both python_websockets.py and socketify_server.py import this module (the
script's own directory is on sys.path when run as `python bench/peers/X.py`),
so they parse and answer identically and differ only in the I/O library.

Like corecast (serde_json RawValue), the top-level object is walked by hand
with the stdlib's C scanner (json.decoder.scan_once / scanstring), which
yields each value *and its end offset*. So `data` and `id` are spliced into
the replies as the exact text the client sent (whitespace, number spelling
and all), and nothing is re-serialized. Anything the fast walk cannot read is
handed to json.loads only to classify the error (INVALID_JSON vs
INVALID_MESSAGE).

Implemented codes: INVALID_JSON, INVALID_MESSAGE, UNKNOWN_MESSAGE_TYPE,
INVALID_CHANNEL, BINARY_NOT_SUPPORTED (the peers send that one themselves).
Not implemented: TOO_MANY_CHANNELS (no per-connection channel cap).
"""

import json
import re
from json.decoder import scanstring

MAX_CHANNEL_BYTES = 255

_decoder = json.JSONDecoder()
_scan_once = _decoder.scan_once  # C scanner; returns (value, end offset)
_WS = re.compile(r"[ \t\n\r]*")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Rust char::is_control (Unicode Cc)

SUBSCRIBE = "subscribe"
UNSUBSCRIBE = "unsubscribe"
PUBLISH = "publish"
HEARTBEAT = "heartbeat"


class ProtocolError(Exception):
    """A request that gets an {"type":"error"} reply; `reply` is that JSON text."""

    def __init__(self, code, message, raw_id=None):
        super().__init__(message)
        self.reply = error(code, message, raw_id)


def _fields(text):
    """Top-level members of a JSON object: {key: (value, raw_text)}. Last key wins.

    Raises ValueError/StopIteration/IndexError on anything that is not a
    plain JSON object with nothing after it.
    """
    n = len(text)
    i = _WS.match(text, 0).end()
    if text[i] != "{":
        raise ValueError("not an object")
    i = _WS.match(text, i + 1).end()
    out = {}
    if text[i] == "}":
        i += 1
    else:
        while True:
            if text[i] != '"':
                raise ValueError("expected key")
            key, i = scanstring(text, i + 1)
            i = _WS.match(text, i).end()
            if text[i] != ":":
                raise ValueError("expected ':'")
            start = _WS.match(text, i + 1).end()
            value, i = _scan_once(text, start)
            out[key] = (value, text[start:i])
            i = _WS.match(text, i).end()
            c = text[i]
            i += 1
            if c == "}":
                break
            if c != ",":
                raise ValueError("expected ',' or '}'")
            i = _WS.match(text, i).end()
    if _WS.match(text, i).end() != n:
        raise ValueError("trailing data")
    return out


def _classify_failure(text):
    try:
        json.loads(text)
    except ValueError as e:
        raise ProtocolError("INVALID_JSON", f"invalid JSON: {e}") from None
    raise ProtocolError(
        "INVALID_MESSAGE", 'request must be a JSON object with a "type"'
    )


def _channel(fields, raw_id):
    if "channel" not in fields:
        raise ProtocolError("INVALID_MESSAGE", 'missing field "channel"', raw_id)
    channel = fields["channel"][0]
    if not isinstance(channel, str):
        raise ProtocolError("INVALID_MESSAGE", '"channel" must be a string', raw_id)
    if not channel:
        raise ProtocolError("INVALID_CHANNEL", "channel must not be empty", raw_id)
    size = len(channel.encode("utf-8", "surrogatepass"))
    if size > MAX_CHANNEL_BYTES:
        raise ProtocolError(
            "INVALID_CHANNEL",
            f"channel is {size} bytes; the limit is {MAX_CHANNEL_BYTES}",
            raw_id,
        )
    if _CONTROL.search(channel):
        raise ProtocolError(
            "INVALID_CHANNEL", "channel must not contain control characters", raw_id
        )
    return channel


def parse(text):
    """Parse one /ws text message.

    Returns (kind, channel, raw_data, raw_id); channel/raw_data are None where
    the kind has none, raw_id is None when the request had no "id".
    Raises ProtocolError, whose .reply is the error JSON to send back.
    """
    try:
        fields = _fields(text)
    except (ValueError, StopIteration, IndexError):
        _classify_failure(text)
    raw_id = None
    if "id" in fields:
        value, raw = fields["id"]
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ProtocolError("INVALID_MESSAGE", '"id" must be a number or a string')
        raw_id = raw
    if "type" not in fields:
        raise ProtocolError("INVALID_MESSAGE", 'missing field "type"', raw_id)
    kind = fields["type"][0]
    if not isinstance(kind, str):
        raise ProtocolError("INVALID_MESSAGE", '"type" must be a string', raw_id)
    if kind == PUBLISH:
        channel = _channel(fields, raw_id)
        if "data" not in fields:
            raise ProtocolError("INVALID_MESSAGE", 'missing field "data"', raw_id)
        return kind, channel, fields["data"][1], raw_id
    if kind == SUBSCRIBE or kind == UNSUBSCRIBE:
        return kind, _channel(fields, raw_id), None, raw_id
    if kind == HEARTBEAT:
        return kind, None, None, raw_id
    raise ProtocolError(
        "UNKNOWN_MESSAGE_TYPE",
        f"unknown type {json.dumps(kind[:64], ensure_ascii=False)}; "
        "expected subscribe, unsubscribe, publish or heartbeat",
        raw_id,
    )


def _str(s):
    return json.dumps(s, ensure_ascii=False)


def _id(raw_id):
    return "" if raw_id is None else ',"id":' + raw_id


def connection_established(connection_id):
    return (
        '{"type":"connection_established","connection_id":"'
        + connection_id
        + '","shard":0}'
    )


def channel_reply(kind, channel, raw_id):
    """subscribed / unsubscribed / published."""
    return '{"type":"' + kind + '","channel":' + _str(channel) + _id(raw_id) + "}"


def heartbeat(raw_id):
    return '{"type":"heartbeat"' + _id(raw_id) + "}"


def error(code, message, raw_id=None):
    return (
        '{"type":"error","code":"' + code + '","message":' + _str(message)
        + _id(raw_id) + "}"
    )


def message_frame(channel, raw_data):
    """The text every subscriber receives; built once per publish."""
    return '{"type":"message","channel":' + _str(channel) + ',"data":' + raw_data + "}"


BINARY_NOT_SUPPORTED = error("BINARY_NOT_SUPPORTED", "binary frames are not supported on /ws")


def parse_args(argv, name, compression=False):
    """--port P (required) and --host H (default 127.0.0.1), shared CLI;
    with `compression`, also --compression off|shared (default off)."""
    import argparse

    p = argparse.ArgumentParser(prog=name, description=f"corecast benchmark peer ({name})")
    p.add_argument("--port", type=int, required=True, help="TCP port (0 = any free port)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    if compression:
        p.add_argument(
            "--compression",
            choices=["off", "shared"],
            default="off",
            help="permessage-deflate: off (default), or shared: one compressor per "
            "event loop, each publish compressed once for all its subscribers",
        )
    return p.parse_args(argv)
