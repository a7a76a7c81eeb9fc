// Scenario "evicted": Redis mode. A subscriber of a history channel whose
// history is lost (the Rust test restarts Redis empty, then publishes)
// gets Centrifugo's unsubscribe push 2500 "insufficient state": the SDK
// subscribes again on the same connection, recovering from its position,
// and is told `recovered: false`; publications then flow again. Extra
// argument: the channel. Prints "subscribed", then "resubscribed" once the
// push came and the subscription is back, then "received" for the first
// publication whose data has `marker` (the Rust test publishes it after
// "resubscribed").
import {
  args, client, data, deadline, emit, next, now, run, sdk, token,
} from './lib.mjs';

const { url, encoding, secret, rest } = args();
const [channel] = rest;
deadline(40000);

run(async () => {
  const Centrifuge = await sdk(encoding);
  const reader = client(Centrifuge, url, { token: token(secret, { sub: `reader-${encoding}`, exp: now() + 3600 }) });
  const connectionEvents = [];
  reader.on('connecting', (c) => connectionEvents.push(`connecting ${c.code}`));
  reader.on('disconnected', (c) => connectionEvents.push(`disconnected ${c.code}`));
  const sub = reader.newSubscription(channel);
  const subscribing = [];
  sub.on('subscribing', (c) => subscribing.push({ code: c.code, reason: c.reason }));
  reader.connect();
  sub.subscribe();
  const first = await next(sub, 'subscribed', 5000);
  const connected = reader._client;
  // Only what happens from here on counts.
  connectionEvents.length = 0;
  subscribing.length = 0;
  emit({ step: 'subscribed', recoverable: first.recoverable, epoch: first.streamPosition?.epoch });

  const again = await next(sub, 'subscribed', 30000);
  emit({
    step: 'resubscribed',
    subscribing,
    recovered: again.recovered,
    was_recovering: again.wasRecovering,
    epoch_changed: again.streamPosition?.epoch !== first.streamPosition?.epoch,
    connection_events: connectionEvents,
    same_client: reader._client === connected,
  });
  for (;;) {
    const ctx = await next(sub, 'publication', 10000);
    const value = data(ctx, encoding);
    if (value && value.marker) {
      emit({ step: 'received', data: value });
      break;
    }
  }
  reader.disconnect();
});
