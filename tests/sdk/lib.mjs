// Shared helpers of the SDK scenarios: the real `centrifuge` SDK (JSON or
// Protobuf build) in Node.js over the `ws` package, HS256 tokens signed
// here with the server's test secret, and results printed as JSON lines
// for the Rust test that runs the scenario (tests/it/centrifugo/).
//
// Every scenario is bounded: `deadline` exits non-zero if it has not
// finished in time, so a broken server fails the test instead of hanging it.

import { createHmac } from 'node:crypto';
import WebSocket from 'ws';

/** Arguments: URL, encoding ("json" | "protobuf"), HMAC secret, then extras. */
export function args() {
  const [url, encoding, secret, ...rest] = process.argv.slice(2);
  if (!url || !['json', 'protobuf'].includes(encoding) || !secret) {
    console.error('usage: node SCENARIO.mjs WS_URL json|protobuf SECRET [...]');
    process.exit(2);
  }
  return { url, encoding, secret, rest };
}

/** The SDK's Centrifuge class for `encoding`. */
export async function sdk(encoding) {
  const module = encoding === 'protobuf'
    ? await import('centrifuge/build/protobuf')
    : await import('centrifuge');
  return module.Centrifuge;
}

/** An HS256 JWT over `claims`, signed with `secret`. */
export function token(secret, claims) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  const sig = createHmac('sha256', secret).update(body).digest('base64url');
  return `${body}.${sig}`;
}

/** Unix seconds now. */
export const now = () => Math.floor(Date.now() / 1000);

/** A client of `url` with the `ws` package as its WebSocket. */
export function client(Centrifuge, url, options = {}) {
  return new Centrifuge(url, {
    websocket: WebSocket,
    minReconnectDelay: 50,
    maxReconnectDelay: 200,
    timeout: 4000,
    ...options,
  });
}

/** Prints one result line. */
export function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

/** Fails the scenario: a line saying why, exit status 1. */
export function fail(why) {
  emit({ fail: String(why) });
  process.exit(1);
}

/** Exits 1 if the scenario is still running after `ms`. */
export function deadline(ms) {
  setTimeout(() => fail(`deadline of ${ms} ms passed`), ms).unref();
}

/** Resolves with the next `event` of `emitter` (bounded by `ms`). */
export function next(emitter, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, (ctx) => {
      clearTimeout(timer);
      resolve(ctx);
    });
  });
}

/** Resolves once `check()` is true, polled every 10 ms (bounded by `ms`). */
export async function until(check, what, ms = 5000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Drops the SDK's socket under it, as a network cut would (no close frame). */
export function cut(client) {
  client._transport._transport.terminate();
}

/** Publication data as the test compares it (Protobuf gives bytes). */
export function data(ctx, encoding) {
  if (encoding === 'protobuf') {
    return JSON.parse(Buffer.from(ctx.data).toString('utf8'));
  }
  return ctx.data;
}

/** Data to publish: JSON text as bytes in Protobuf, as Centrifugo expects. */
export function payload(value, encoding) {
  return encoding === 'protobuf'
    ? new TextEncoder().encode(JSON.stringify(value))
    : value;
}

/** Runs `main`, failing the scenario on any error, exit 0 when it returns. */
export function run(main) {
  main().then(() => process.exit(0), (e) => fail(e && e.stack ? e.stack : e));
}

/** A uint64 as a number (the Protobuf build may give a Long). */
export function num(x) {
  if (x !== null && typeof x === 'object' && typeof x.toNumber === 'function') return x.toNumber();
  return Number(x ?? 0);
}

/** `connInfo` as a value (the Protobuf build gives bytes). */
export function info(clientInfo) {
  const v = clientInfo.connInfo;
  if (v instanceof Uint8Array) return JSON.parse(Buffer.from(v).toString('utf8'));
  return v;
}
