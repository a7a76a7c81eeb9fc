'use strict';
// corecast benchmark peer: node `ws` 8.x, one process, noServer mode.
//
// Usage: node server.js --port P [--host 127.0.0.1]
//
// One http.Server answers GET /health (200) and 404 for anything else; its
// 'upgrade' event routes /echo and /ws to two WebSocketServer({noServer})
// instances (the ws README's "Multiple servers sharing a single HTTP/S
// server" pattern).
//
// Fan-out: the message frame text is built once per publish and turned into
// one Buffer, which is handed to every subscriber's ws.send() (ws then only
// writes a per-socket frame header; no re-encoding per subscriber).
// JSON.parse gives no access to the raw text of `data` on this Node version,
// so `data` (and `id`) ARE re-serialized with JSON.stringify: compact
// whitespace, numbers in JS spelling (2.50 -> 2.5, big integers lose
// precision). corecast and the Python peers pass them through verbatim.
// No slow-consumer limit (ws has none built in): a slow subscriber's
// bufferedAmount grows without bound.
//
// Settings aligned with corecast's defaults: no permessage-deflate, 1 MiB
// max message. bufferutil (optional dependency) is loaded by ws on Node < 26
// for frame masking, as ws's README suggests for older Node versions.

const http = require('http');
const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const opts = { port: null, host: '127.0.0.1' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') opts.port = argv[++i];
    else if (a.startsWith('--port=')) opts.port = a.slice(7);
    else if (a === '--host') opts.host = argv[++i];
    else if (a.startsWith('--host=')) opts.host = a.slice(7);
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: node server.js --port P [--host 127.0.0.1]\n');
      process.exit(0);
    } else {
      process.stderr.write(`unknown argument: ${a}\n`);
      process.exit(2);
    }
  }
  const port = Number(opts.port);
  if (opts.port === null || !Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write('usage: node server.js --port P [--host 127.0.0.1]\n');
    process.exit(2);
  }
  return { port, host: opts.host };
}

// ---- protocol (docs/protocol.md) -------------------------------------------

const MAX_CHANNEL_BYTES = 255;
// Rust char::is_control: Unicode Cc.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const BINARY_NOT_SUPPORTED = errorReply(
  'BINARY_NOT_SUPPORTED', 'binary frames are not supported on /ws', undefined);

function idPart(id) {
  return id === undefined ? '' : ',"id":' + JSON.stringify(id);
}

function errorReply(code, message, id) {
  return '{"type":"error","code":"' + code + '","message":' +
    JSON.stringify(message) + idPart(id) + '}';
}

function channelReply(kind, channel, id) {
  return '{"type":"' + kind + '","channel":' + JSON.stringify(channel) + idPart(id) + '}';
}

// Returns the channel, or an error reply string (prefixed by '\0' to tell
// the two apart cheaply).
function channelOf(msg, id) {
  const c = msg.channel;
  if (c === undefined) return '\0' + errorReply('INVALID_MESSAGE', 'missing field "channel"', id);
  if (typeof c !== 'string') return '\0' + errorReply('INVALID_MESSAGE', '"channel" must be a string', id);
  if (c.length === 0) return '\0' + errorReply('INVALID_CHANNEL', 'channel must not be empty', id);
  const size = Buffer.byteLength(c);
  if (size > MAX_CHANNEL_BYTES) {
    return '\0' + errorReply('INVALID_CHANNEL',
      `channel is ${size} bytes; the limit is ${MAX_CHANNEL_BYTES}`, id);
  }
  if (CONTROL.test(c)) {
    return '\0' + errorReply('INVALID_CHANNEL', 'channel must not contain control characters', id);
  }
  return c;
}

// ---- pub/sub state -----------------------------------------------------------

const channels = new Map(); // channel -> Set<WebSocket>
let nextId = 0;

function unsubscribe(ws, channel) {
  const subs = channels.get(channel);
  if (subs !== undefined && subs.delete(ws) && subs.size === 0) channels.delete(channel);
}

function onPubsubMessage(ws, data, isBinary) {
  if (isBinary) {
    ws.send(BINARY_NOT_SUPPORTED);
    return;
  }
  const text = data.toString();
  let msg;
  try {
    msg = JSON.parse(text);
  } catch (e) {
    ws.send(errorReply('INVALID_JSON', 'invalid JSON: ' + e.message, undefined));
    return;
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    ws.send(errorReply('INVALID_MESSAGE', 'request must be a JSON object with a "type"', undefined));
    return;
  }
  let id = msg.id;
  if (id !== undefined && typeof id !== 'number' && typeof id !== 'string') {
    ws.send(errorReply('INVALID_MESSAGE', '"id" must be a number or a string', undefined));
    return;
  }
  const type = msg.type;
  if (type === undefined) {
    ws.send(errorReply('INVALID_MESSAGE', 'missing field "type"', id));
    return;
  }
  if (typeof type !== 'string') {
    ws.send(errorReply('INVALID_MESSAGE', '"type" must be a string', id));
    return;
  }
  switch (type) {
    case 'publish': {
      const channel = channelOf(msg, id);
      if (channel.charCodeAt(0) === 0) { ws.send(channel.slice(1)); return; }
      if (!Object.prototype.hasOwnProperty.call(msg, 'data')) {
        ws.send(errorReply('INVALID_MESSAGE', 'missing field "data"', id));
        return;
      }
      const subs = channels.get(channel);
      if (subs !== undefined) {
        // Built and UTF-8 encoded once; every subscriber gets the same Buffer.
        const frame = Buffer.from('{"type":"message","channel":' + JSON.stringify(channel) +
          ',"data":' + JSON.stringify(msg.data) + '}');
        for (const sub of subs) sub.send(frame, { binary: false });
      }
      if (id !== undefined) ws.send(channelReply('published', channel, id));
      return;
    }
    case 'subscribe': {
      const channel = channelOf(msg, id);
      if (channel.charCodeAt(0) === 0) { ws.send(channel.slice(1)); return; }
      let subs = channels.get(channel);
      if (subs === undefined) channels.set(channel, (subs = new Set()));
      subs.add(ws);
      ws.channels.add(channel);
      ws.send(channelReply('subscribed', channel, id));
      return;
    }
    case 'unsubscribe': {
      const channel = channelOf(msg, id);
      if (channel.charCodeAt(0) === 0) { ws.send(channel.slice(1)); return; }
      if (ws.channels.delete(channel)) unsubscribe(ws, channel);
      ws.send(channelReply('unsubscribed', channel, id));
      return;
    }
    case 'heartbeat':
      ws.send('{"type":"heartbeat"' + idPart(id) + '}');
      return;
    default:
      ws.send(errorReply('UNKNOWN_MESSAGE_TYPE',
        `unknown type ${JSON.stringify(type.slice(0, 64))}; ` +
        'expected subscribe, unsubscribe, publish or heartbeat', id));
  }
}

// ---- servers -----------------------------------------------------------------

const wsOptions = { noServer: true, maxPayload: 1 << 20, perMessageDeflate: false };

const echoServer = new WebSocketServer(wsOptions);
echoServer.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});

const pubsubServer = new WebSocketServer(wsOptions);
pubsubServer.on('connection', (ws) => {
  ws.channels = new Set();
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => onPubsubMessage(ws, data, isBinary));
  ws.on('close', () => {
    for (const channel of ws.channels) unsubscribe(ws, channel);
    ws.channels.clear();
  });
  ws.send(`{"type":"connection_established","connection_id":"0-${nextId++}","shard":0}`);
});

function pathOf(url) {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

const server = http.createServer((req, res) => {
  if (pathOf(req.url) === '/health') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end('{"status":"ok"}\n');
  } else {
    res.writeHead(404, { 'Content-Type': 'text/plain', Connection: 'close' });
    res.end('not found\n');
  }
});

server.on('upgrade', (req, socket, head) => {
  const path = pathOf(req.url);
  const target = path === '/ws' ? pubsubServer : path === '/echo' ? echoServer : null;
  if (target === null) {
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  target.handleUpgrade(req, socket, head, (ws) => target.emit('connection', ws, req));
});

const { port, host } = parseArgs(process.argv.slice(2));
server.on('error', (err) => {
  process.stderr.write(`cannot listen on ${host}:${port}: ${err.message}\n`);
  process.exit(1);
});
server.listen(port, host, () => {
  process.stderr.write(`listening port=${server.address().port}\n`);
});

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  server.close();
  for (const wss of [echoServer, pubsubServer]) {
    for (const ws of wss.clients) ws.close(1001, 'server shutting down');
  }
  // Give clients a moment to answer the close, then go regardless.
  const deadline = setTimeout(() => process.exit(0), 2000);
  deadline.unref();
  const check = setInterval(() => {
    if (echoServer.clients.size === 0 && pubsubServer.clients.size === 0) process.exit(0);
  }, 20);
  check.unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
