// Scenario "basic": connect with a token, subscribe, join, publish and
// receive, presence and presence_stats, leave, history (limit, reverse,
// since), the errors for what a namespace does not allow, and the user's
// personal channel as a server-side subscription (POST /api/user/send).
// Channels: chat:* (presence, join_leave), h:* (history). Extra argument:
// the admin address.
import {
  args, client, data, deadline, emit, info, next, now, num, payload, run, sdk, token, until,
} from './lib.mjs';

const { url, encoding, secret, rest } = args();
const [admin] = rest;
deadline(20000);

run(async () => {
  const Centrifuge = await sdk(encoding);
  const alice = client(Centrifuge, url, {
    token: token(secret, { sub: 'alice', exp: now() + 3600, info: { name: 'Alice' } }),
  });
  const connected = next(alice, 'connected');
  const serverSubs = [];
  alice.on('subscribed', (c) => serverSubs.push(c.channel));
  const personal = [];
  alice.on('publication', (c) => personal.push({ channel: c.channel, data: data(c, encoding) }));
  alice.connect();
  const ctx = await connected;
  emit({ step: 'connected', client: ctx.client, transport: ctx.transport });

  const sent = await fetch(`http://${admin}/api/user/send`, {
    method: 'POST',
    body: JSON.stringify({ user: 'alice', data: { dm: 1 } }),
  });
  await until(() => personal.length === 1, 'the personal message');
  emit({ step: 'personal', status: sent.status, server_subs: serverSubs, publication: personal[0] });

  const room = alice.newSubscription('chat:room', { joinLeave: true });
  const joins = [];
  const leaves = [];
  const received = [];
  room.on('join', (c) => joins.push(c.info));
  room.on('leave', (c) => leaves.push(c.info));
  room.on('publication', (c) => received.push(data(c, encoding)));
  room.subscribe();
  await room.ready(5000);
  emit({ step: 'subscribed', channel: room.channel });

  const bob = client(Centrifuge, url, { token: token(secret, { sub: 'bob', exp: now() + 3600 }) });
  bob.connect();
  const bobRoom = bob.newSubscription('chat:room');
  bobRoom.subscribe();
  await bobRoom.ready(5000);
  await until(() => joins.some((i) => i.user === 'bob'), 'bob\'s join');
  emit({ step: 'join', user: 'bob' });

  await bobRoom.publish(payload({ text: 'hi' }, encoding));
  await until(() => received.length === 1, 'the publication');
  emit({ step: 'publication', data: received[0] });

  const presence = await room.presence();
  const clients = Object.values(presence.clients);
  const aliceInfo = clients.find((c) => c.user === 'alice');
  emit({
    step: 'presence',
    users: clients.map((c) => c.user).sort(),
    keyed_by_client: Object.entries(presence.clients).every(([id, c]) => id === c.client),
    alice_info: aliceInfo ? info(aliceInfo) : null,
  });
  const stats = await room.presenceStats();
  emit({ step: 'presence_stats', clients: stats.numClients, users: stats.numUsers });

  bobRoom.unsubscribe();
  await until(() => leaves.some((i) => i.user === 'bob'), 'bob\'s leave');
  emit({ step: 'leave', user: 'bob' });

  const log = alice.newSubscription('h:log');
  log.subscribe();
  const subscribed = await next(log, 'subscribed');
  emit({ step: 'history_subscribed', recoverable: subscribed.recoverable, positioned: subscribed.positioned });
  for (const n of [1, 2, 3]) {
    await log.publish(payload({ n }, encoding));
  }
  const page = await alice.history('h:log', { limit: 10 });
  const view = (p) => ({ offset: num(p.offset), n: data(p, encoding).n });
  emit({ step: 'history', pubs: page.publications.map(view), offset: num(page.offset), epoch: page.epoch !== '' });
  const newest = await alice.history('h:log', { limit: 2, reverse: true });
  emit({ step: 'history_reverse', pubs: newest.publications.map(view) });
  const after = await alice.history('h:log', { limit: 10, since: { offset: 2, epoch: page.epoch } });
  emit({ step: 'history_since', pubs: after.publications.map(view) });
  const error = async (p) => p.then(() => 0, (e) => e.code);
  emit({ step: 'history_error', code: await error(alice.history('chat:room', { limit: 1 })) });
  emit({ step: 'presence_error', code: await error(log.presence()) });
  emit({ step: 'rpc_error', code: await error(alice.rpc('method', payload({}, encoding))) });
  alice.disconnect();
  bob.disconnect();
});
