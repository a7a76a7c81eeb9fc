// Scenario "recovery": a subscriber of a history channel whose socket is
// cut while another client keeps publishing gets every publication exactly
// once, in order, with `recovered: true` on its resubscribe; after the
// channel's history is removed (admin API) while it is away, it
// resubscribes with `recovered: false`. Extra argument: the admin address.
import {
  args, client, cut, data, deadline, emit, next, now, payload, run, sdk, token, until,
} from './lib.mjs';

const { url, encoding, secret, rest } = args();
const [admin] = rest;
deadline(30000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

run(async () => {
  const Centrifuge = await sdk(encoding);
  const channel = `h:recovery-${encoding}`;
  const tokenFor = (sub) => token(secret, { sub, exp: now() + 3600 });
  const reader = client(Centrifuge, url, { token: tokenFor('reader') });
  const writer = client(Centrifuge, url, { token: tokenFor('writer') });
  const seen = [];
  const subscribed = [];
  const sub = reader.newSubscription(channel);
  sub.on('publication', (c) => seen.push(data(c, encoding).n));
  sub.on('subscribed', (c) => subscribed.push({ recovered: c.recovered, was_recovering: c.wasRecovering }));
  let away = false;
  let publishedWhileAway = 0;
  reader.on('connecting', () => { away = true; });
  reader.on('connected', () => { away = false; });
  reader.connect();
  sub.subscribe();
  await sub.ready(5000);
  writer.connect();

  const total = 300;
  for (let n = 1; n <= total; n += 1) {
    await writer.publish(channel, payload({ n }, encoding));
    if (away) publishedWhileAway += 1;
    if (n === 30) cut(reader);
    await sleep(2); // Pacing, so that the cut falls mid-stream.
  }
  // A last publication as the end marker: delivery is in order, so any
  // duplicate of the 300 would arrive before it.
  await writer.publish(channel, payload({ n: 'end' }, encoding));
  await until(() => seen.includes('end'), 'the end marker', 10000);
  const exact = seen.length === total + 1 && seen[total] === 'end'
    && seen.slice(0, total).every((n, i) => n === i + 1);
  emit({
    step: 'recovered', count: seen.length, exact, published_while_away: publishedWhileAway, subscribed,
  });

  reader.disconnect();
  const removed = await fetch(`http://${admin}/api/history/remove`, {
    method: 'POST',
    body: JSON.stringify({ channel }),
  });
  await writer.publish(channel, payload({ n: total + 1 }, encoding));
  const again = next(sub, 'subscribed');
  reader.connect();
  const ctx = await again;
  emit({
    step: 'lost', removed: removed.status, recovered: ctx.recovered, was_recovering: ctx.wasRecovering,
  });
  reader.disconnect();
  writer.disconnect();
});
