// Scenario "interop": an SDK client and a /ws client (driven by the Rust
// test) in one channel. The SDK subscribes and says so; it waits for the
// /ws client's message, then publishes its own. Extra argument: channel.
import {
  args, client, data, deadline, emit, next, now, payload, run, sdk, token,
} from './lib.mjs';

const { url, encoding, secret, rest } = args();
const [channel] = rest;
deadline(15000);

run(async () => {
  const Centrifuge = await sdk(encoding);
  const sdkClient = client(Centrifuge, url, { token: token(secret, { sub: 'sdk', exp: now() + 3600 }) });
  sdkClient.connect();
  const sub = sdkClient.newSubscription(channel);
  const first = next(sub, 'publication', 10000);
  sub.subscribe();
  await sub.ready(5000);
  emit({ step: 'subscribed' });
  const got = await first;
  emit({ step: 'received', data: data(got, encoding) });
  await sub.publish(payload({ from: 'sdk' }, encoding));
  emit({ step: 'published' });
  sdkClient.disconnect();
});
