// Scenario "cluster_presence": Redis mode, two processes. Alice connects
// to the first URL, Bob to the second (extra argument); both join
// chat:cluster-ENCODING. Alice must see Bob's join and both of them in
// the channel's presence, each under the client id its own connect result
// gave (ids are unique across processes, so neither hides the other).
import {
  args, client, deadline, emit, now, run, sdk, token, until,
} from './lib.mjs';

const { url, encoding, secret, rest } = args();
const [otherUrl] = rest;
deadline(20000);

run(async () => {
  const Centrifuge = await sdk(encoding);
  const channel = `chat:cluster-${encoding}`;
  const alice = client(Centrifuge, url, { token: token(secret, { sub: 'alice', exp: now() + 3600 }) });
  const bob = client(Centrifuge, otherUrl, { token: token(secret, { sub: 'bob', exp: now() + 3600 }) });
  const ids = {};
  alice.on('connected', (c) => { ids.alice = c.client; });
  bob.on('connected', (c) => { ids.bob = c.client; });
  const joins = [];
  const room = alice.newSubscription(channel, { joinLeave: true });
  room.on('join', (c) => joins.push(c.info));
  alice.connect();
  room.subscribe();
  await room.ready(5000);
  bob.connect();
  const bobRoom = bob.newSubscription(channel);
  bobRoom.subscribe();
  await bobRoom.ready(5000);
  await until(() => joins.some((i) => i.user === 'bob'), 'bob\'s join');
  const bobJoin = joins.find((i) => i.user === 'bob');
  // Redis-mode presence is written just after each subscribe is answered
  // and nothing announces it: asked again (up to 5 s) until both are
  // listed. A collision of ids would leave one entry for good.
  let presence = {};
  for (let i = 0; i < 100 && Object.keys(presence).length < 2; i += 1) {
    presence = (await room.presence()).clients;
    if (Object.keys(presence).length < 2) await new Promise((r) => setTimeout(r, 50));
  }
  emit({
    step: 'presence',
    ids,
    distinct: ids.alice !== ids.bob,
    bob_join_client: bobJoin.client,
    keys: Object.keys(presence).sort(),
    users: Object.values(presence).map((c) => c.user).sort(),
  });
  alice.disconnect();
  bob.disconnect();
});
