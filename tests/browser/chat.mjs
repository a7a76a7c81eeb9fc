// The --demo chat page end to end, in Debian's headless Chromium driven by
// playwright-core: two people join a room, see each other in presence and
// join/leave notices, talk; one goes offline while the other talks, comes
// back and is shown each missed message exactly once, recovered; a third
// joins later and gets the room's history, then leaves; one disconnects
// with the page's own button and recovers on connecting again.
//
// Usage: node chat.mjs http://127.0.0.1:PORT [--screenshot FILE]
// (tests/it/demo.rs starts `corecast --demo` and runs this). Prints one
// line per check and exits 0 when all pass, 1 at the first failure (with
// the pages' console output), 2 on bad usage.
//
// Going offline is a real network cut: alice's page reaches the server
// through a TCP relay here that drops her connections and refuses new ones
// (Chromium's offline emulation leaves open WebSockets alone), and the
// context is set offline too so the page gets its `offline` and `online`
// events as a real one would.

import net from 'node:net';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Each wait's bound; the whole run normally takes a few seconds.
const WAIT_MS = 15_000;
// The whole run's bound, so a hang fails instead of stalling the suite.
const RUN_MS = 90_000;
const ROOM = 'lobby';

const args = process.argv.slice(2);
const base = args[0];
const shotAt = args.indexOf('--screenshot');
const screenshot = shotAt > 0 ? args[shotAt + 1] : null;
if (!base || !/^http:\/\/[^/]+$/.test(base) || (shotAt > 0 && !screenshot)) {
  console.error('usage: node chat.mjs http://HOST:PORT [--screenshot FILE]');
  process.exit(2);
}

/** A TCP relay to the server that can be cut (drop every connection and
 * refuse new ones) and mended. */
class Relay {
  constructor(target) {
    this.target = target;
    this.cut = false;
    this.sockets = new Set();
    this.server = net.createServer((client) => this.relay(client));
  }

  listen() {
    return new Promise((resolve) => {
      this.server.listen(0, '127.0.0.1', () => resolve(this.server.address().port));
    });
  }

  relay(client) {
    if (this.cut) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.target.port, this.target.hostname);
    for (const [a, b] of [[client, upstream], [upstream, client]]) {
      this.sockets.add(a);
      a.on('close', () => {
        this.sockets.delete(a);
        b.destroy();
      });
      a.on('error', () => b.destroy());
      a.pipe(b);
    }
  }

  sever() {
    this.cut = true;
    for (const socket of this.sockets) socket.destroy();
  }

  mend() {
    this.cut = false;
  }

  close() {
    this.sever();
    this.server.close();
  }
}

let passed = 0;
const consoles = [];
// Every HTTP answer of 400 or more any page got (a missing asset, a favicon).
const badResponses = [];

function check(what) {
  passed += 1;
  console.log(`ok ${passed} - ${what}`);
}

function fail(what, err) {
  console.log(`not ok ${passed + 1} - ${what}: ${err && err.message ? err.message : err}`);
  for (const line of consoles) console.log(`# ${line}`);
  console.log(`chat e2e: ${passed} passed, 1 failed`);
  process.exit(1);
}

async function step(what, fn) {
  try {
    await fn();
  } catch (err) {
    fail(what, err);
  }
  check(what);
}

async function openPage(browser, name, origin) {
  const context = await browser.newContext({ viewport: { width: 880, height: 560 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('console', (msg) => consoles.push(`${name} console.${msg.type()}: ${msg.text()}`));
  page.on('pageerror', (err) => consoles.push(`${name} page error: ${err.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400) badResponses.push(`${name}: ${r.status()} ${r.url()}`);
  });
  await page.goto(`${origin}/demo/?user=${name}&room=${ROOM}`);
  return { context, page };
}

const texts = (page, selector) =>
  page.$$eval(selector, (els) => els.map((el) => el.textContent));

// Messages in the log as "who: text", in order.
const messages = (page) =>
  page.$$eval('#log .msg', (els) =>
    els.map((el) => `${el.querySelector('.who').textContent}: ${el.querySelector('.text').textContent}`));

const presence = (page) => texts(page, '#presence li');

async function waitPresence(page, want) {
  await page.waitForFunction(
    (names) => {
      const got = [...document.querySelectorAll('#presence li')].map((li) => li.textContent);
      return got.join(',') === names.join(',');
    },
    want,
    { timeout: WAIT_MS },
  ).catch(async () => {
    throw new Error(`presence is ${JSON.stringify(await presence(page))}, want ${JSON.stringify(want)}`);
  });
}

async function waitNotice(page, kind, text, count = 1) {
  await page.waitForFunction(
    ([k, t, n]) => [...document.querySelectorAll(`#log .notice.${k}`)]
      .filter((li) => li.textContent === t).length >= n,
    [kind, text, count],
    { timeout: WAIT_MS },
  ).catch(async () => {
    throw new Error(`no ${kind} notice ${JSON.stringify(text)}; notices: ${JSON.stringify(await texts(page, '#log .notice'))}`);
  });
}

async function waitMessage(page, line) {
  await page.waitForFunction(
    (want) => [...document.querySelectorAll('#log .msg')].some(
      (el) => `${el.querySelector('.who').textContent}: ${el.querySelector('.text').textContent}` === want,
    ),
    line,
    { timeout: WAIT_MS },
  ).catch(async () => {
    throw new Error(`no message ${JSON.stringify(line)}; log: ${JSON.stringify(await messages(page))}`);
  });
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
  // The input is cleared once the server acknowledged the publish.
  await page.waitForFunction(() => document.getElementById('text').value === '', null, { timeout: WAIT_MS });
}

async function main() {
  const target = new URL(base);
  const relay = new Relay(target);
  const relayed = `http://127.0.0.1:${await relay.listen()}`;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    // Nothing here may reach the internet: without these Chromium stalls
    // on lookups and connections this machine refuses.
    args: [
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
    ],
  });
  const timer = setTimeout(() => fail('the whole run', `over ${RUN_MS} ms`), RUN_MS);

  let alice;
  let bob;
  await step('alice opens the page (through the relay) and connects', async () => {
    alice = await openPage(browser, 'alice', relayed);
    await alice.page.locator('#state[data-state="connected"]').waitFor();
    await waitPresence(alice.page, ['alice']);
  });
  await step('bob opens the page and connects', async () => {
    bob = await openPage(browser, 'bob', base);
    await bob.page.locator('#state[data-state="connected"]').waitFor();
  });
  await step('each sees the other in presence', async () => {
    await waitPresence(alice.page, ['alice', 'bob']);
    await waitPresence(bob.page, ['alice', 'bob']);
  });
  await step('alice sees bob join', () => waitNotice(alice.page, 'join', 'bob joined'));
  await step('messages go both ways', async () => {
    await say(alice.page, 'hello bob');
    await waitMessage(bob.page, 'alice: hello bob');
    await say(bob.page, 'hi alice');
    await waitMessage(alice.page, 'bob: hi alice');
  });

  await step('alice goes offline: her page says so, bob sees her leave', async () => {
    relay.sever();
    await alice.context.setOffline(true);
    await alice.page.locator('#state[data-state="reconnecting"]').waitFor();
    await alice.page.locator('#log .notice.state').waitFor();
    await waitNotice(bob.page, 'leave', 'alice left');
    await waitPresence(bob.page, ['bob']);
  });
  const missed = ['missed one', 'missed two', 'missed three'];
  await step('bob talks while alice is away', async () => {
    for (const text of missed) await say(bob.page, text);
  });
  await step('alice comes back and recovers the 3 missed messages', async () => {
    relay.mend();
    await alice.context.setOffline(false);
    await alice.page.locator('#state[data-state="connected"]').waitFor();
    await waitNotice(alice.page, 'recovered', 'recovered 3 missed messages');
  });
  await step('alice shows every message exactly once, in order', async () => {
    const want = ['alice: hello bob', 'bob: hi alice', ...missed.map((m) => `bob: ${m}`)];
    const got = await messages(alice.page);
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      throw new Error(`log ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
  });
  await step('bob sees alice join again, and both are present', async () => {
    // Bob came after alice's first join: this one is her return.
    await waitNotice(bob.page, 'join', 'alice joined');
    await waitPresence(alice.page, ['alice', 'bob']);
    await waitPresence(bob.page, ['alice', 'bob']);
  });
  if (screenshot) {
    await step(`screenshot of alice's page in ${screenshot}`, () => alice.page.screenshot({ path: screenshot }));
  }

  let carol;
  await step('carol joins later and gets the history', async () => {
    carol = await openPage(browser, 'carol', base);
    await carol.page.locator('#state[data-state="connected"]').waitFor();
    await waitPresence(carol.page, ['alice', 'bob', 'carol']);
    const want = ['alice: hello bob', 'bob: hi alice', ...missed.map((m) => `bob: ${m}`)];
    await carol.page.waitForFunction((n) => document.querySelectorAll('#log .msg.history').length >= n, want.length);
    const got = await messages(carol.page);
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      throw new Error(`history ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
  });
  await step('carol switches rooms: the others see her leave', async () => {
    await carol.page.fill('#switch-room', 'elsewhere');
    await carol.page.press('#switch-room', 'Enter');
    await waitNotice(alice.page, 'leave', 'carol left');
    await waitNotice(bob.page, 'leave', 'carol left');
    await waitPresence(alice.page, ['alice', 'bob']);
    await waitPresence(carol.page, ['carol']);
  });

  await step('bob disconnects by hand and connects again: 1 missed message recovered', async () => {
    await bob.page.click('#toggle');
    await bob.page.locator('#state[data-state="disconnected"]').waitFor();
    await waitNotice(alice.page, 'leave', 'bob left');
    await say(alice.page, 'are you there?');
    await bob.page.click('#toggle');
    await bob.page.locator('#state[data-state="connected"]').waitFor();
    await waitNotice(bob.page, 'recovered', 'recovered 1 missed message');
    const want = ['alice: hello bob', 'bob: hi alice', ...missed.map((m) => `bob: ${m}`), 'alice: are you there?'];
    const got = await messages(bob.page);
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      throw new Error(`log ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
  });

  await step('no page asked for anything the server does not have', async () => {
    if (badResponses.length > 0) throw new Error(badResponses.join('; '));
  });

  clearTimeout(timer);
  await browser.close();
  relay.close();
  console.log(`chat e2e: ${passed} passed, 0 failed`);
}

main().catch((err) => fail('the run', err));
