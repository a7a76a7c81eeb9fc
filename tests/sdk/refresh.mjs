// Scenario "refresh": a token that expires in 2 s is refreshed through
// getToken before it expires, and the connection outlives the first
// token (and the 5 s of leeway corecast gives an expired one); a token already expired at connect gets error 109, and the SDK
// fetches a new one and connects.
import {
  args, client, deadline, emit, next, now, run, sdk, token, until,
} from './lib.mjs';

const { url, encoding, secret } = args();
deadline(25000);

run(async () => {
  const Centrifuge = await sdk(encoding);
  let calls = 0;
  const firstExp = now() + 2;
  const carol = client(Centrifuge, url, {
    token: token(secret, { sub: 'carol', exp: firstExp }),
    getToken: async () => {
      calls += 1;
      return token(secret, { sub: 'carol', exp: now() + 3600 });
    },
  });
  const connected = next(carol, 'connected');
  carol.connect();
  const first = await connected;
  // From here on, any of these means the connection was lost.
  const events = [];
  carol.on('connecting', (e) => events.push(`connecting ${e.code}`));
  carol.on('disconnected', (e) => events.push(`disconnected ${e.code}`));
  await until(() => calls >= 1, 'a token refresh', 8000);
  emit({ step: 'refreshed', calls });
  // Past the first token's expiry and its leeway.
  await until(() => now() > firstExp + 6, 'the first token\'s end', 12000);
  const sub = carol.newSubscription('chat:after-refresh');
  sub.subscribe();
  await sub.ready(3000);
  emit({ step: 'still_connected', state: carol.state, events, same_client: first.client === carol._client });

  let lateCalls = 0;
  const dave = client(Centrifuge, url, {
    token: token(secret, { sub: 'dave', exp: now() - 10 }),
    getToken: async () => {
      lateCalls += 1;
      return token(secret, { sub: 'dave', exp: now() + 3600 });
    },
  });
  const errors = [];
  dave.on('error', (e) => errors.push(e.error ? e.error.code : null));
  const daveConnected = next(dave, 'connected');
  dave.connect();
  await daveConnected;
  emit({ step: 'expired_at_connect', errors, calls: lateCalls });
  carol.disconnect();
  dave.disconnect();
});
