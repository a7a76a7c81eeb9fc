// The corecast chat demo: plain JavaScript over the centrifuge SDK (the
// global `Centrifuge` from centrifuge.js, served next to this file).
//
// A room is the channel `chat:ROOM`. The page shows the room's history on
// join, live messages, join/leave notices, who is here (presence), and the
// connection's state; after a reconnect it says how many missed messages
// the server recovered. Everything shown comes from the server: nothing is
// deduplicated or invented here, so the page shows what the protocol does.
'use strict';

(() => {
  const NAMESPACE = 'chat:';
  // Messages shown from history when joining a room.
  const HISTORY_LIMIT = 50;
  const NAME = /^[A-Za-z0-9_.-]{1,32}$/;

  const $ = (id) => document.getElementById(id);
  const state = $('state');
  const log = $('log');

  let client = null;
  let sub = null;
  let me = '';
  // This page's connection id: its own join and leave are not announced.
  let myClient = '';

  // The connection state indicator: connecting, connected, reconnecting,
  // disconnected (data-state drives the colour; tests read it too).
  function showState(name, text) {
    state.dataset.state = name;
    state.textContent = text || name;
    $('toggle').textContent = name === 'disconnected' ? 'Connect' : 'Disconnect';
  }

  function line(className, parts) {
    const li = document.createElement('li');
    li.className = className;
    for (const [cls, text] of parts) {
      const span = document.createElement('span');
      span.className = cls;
      span.textContent = text;
      li.append(span);
    }
    return li;
  }

  function notice(kind, text) {
    log.append(line('notice ' + kind, [['text', text]]));
    log.scrollTop = log.scrollHeight;
  }

  // Who sent a publication: the server's word (`info`) when it gives it.
  // corecast attaches no publisher info to publications (docs/centrifugo.md),
  // so the page also sends its name in the message; that one is the
  // sender's claim, not checked by the server.
  function sender(pub) {
    if (pub.info && pub.info.user) return pub.info.user;
    if (pub.data && typeof pub.data.user === 'string') return pub.data.user;
    return '(server)';
  }

  function message(pub, history) {
    const who = sender(pub);
    const text = pub.data && typeof pub.data.text === 'string' ? pub.data.text : JSON.stringify(pub.data);
    const li = line(history ? 'msg history' : 'msg', [['who', who], ['text', text]]);
    if (pub.offset !== undefined) li.dataset.offset = pub.offset;
    if (who === me) li.classList.add('mine');
    return li;
  }

  async function fetchToken(user) {
    const response = await fetch('token?user=' + encodeURIComponent(user));
    const body = await response.json();
    if (!response.ok) throw new Error(body.message || response.statusText);
    return body.token;
  }

  async function start(user, room) {
    const token = await fetchToken(user);
    me = user;
    $('me').textContent = user;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    client = new Centrifuge(`${scheme}//${location.host}/connection/websocket`, {
      token,
      // A new token when the server says this one expired.
      getToken: () => fetchToken(user),
      // Keep retries close together: a demo should come back quickly.
      maxReconnectDelay: 5000,
    });
    let everConnected = false;
    client.on('connecting', (ctx) => {
      if (!everConnected) {
        showState('connecting');
        return;
      }
      if (state.dataset.state === 'connected') {
        notice('state', `connection lost (${ctx.reason}); reconnecting`);
      }
      showState('reconnecting', `reconnecting (${ctx.reason})`);
    });
    client.on('connected', (ctx) => {
      everConnected = true;
      myClient = ctx.client;
      showState('connected');
    });
    client.on('disconnected', (ctx) => {
      showState('disconnected', `disconnected (${ctx.reason})`);
      notice('state', `disconnected (${ctx.reason})`);
    });
    client.connect();
    $('toggle').hidden = false;
    $('login').hidden = true;
    $('chat').hidden = false;
    join(room);
  }

  function join(room) {
    if (sub) {
      client.removeSubscription(sub);
      sub = null;
    }
    log.replaceChildren();
    $('presence').replaceChildren();
    $('room').textContent = room;
    document.title = `${room} · corecast chat`;
    history.replaceState(null, '', `?user=${encodeURIComponent(me)}&room=${encodeURIComponent(room)}`);

    const current = client.newSubscription(NAMESPACE + room, {
      recoverable: true,
      positioned: true,
      joinLeave: true,
    });
    sub = current;
    let joined = false;
    // Set while the publications of a recovering subscribe arrive: the SDK
    // delivers them right after `subscribed`, in the same task, so a
    // microtask queued there runs once they all have.
    let recovered = null;

    current.on('subscribing', () => {
      if (joined) $('presence').classList.add('stale');
    });
    current.on('subscribed', (ctx) => {
      if (!joined) {
        joined = true;
        notice('self', `you joined ${room}`);
        loadHistory(current, ctx.streamPosition);
      } else if (ctx.wasRecovering && ctx.recovered) {
        recovered = { count: 0 };
        queueMicrotask(() => {
          const n = recovered.count;
          recovered = null;
          notice('recovered', `recovered ${n} missed message${n === 1 ? '' : 's'}`);
        });
      } else if (ctx.wasRecovering) {
        notice('lost', 'missed messages could not be recovered; history reloaded');
        log.replaceChildren();
        loadHistory(current, ctx.streamPosition);
      }
      refreshPresence(current);
    });
    current.on('publication', (ctx) => {
      if (recovered) recovered.count += 1;
      log.append(message(ctx, false));
      log.scrollTop = log.scrollHeight;
    });
    current.on('join', (ctx) => {
      if (ctx.info.client !== myClient) notice('join', `${ctx.info.user} joined`);
      refreshPresence(current);
    });
    current.on('leave', (ctx) => {
      if (ctx.info.client !== myClient) notice('leave', `${ctx.info.user} left`);
      refreshPresence(current);
    });
    current.on('error', (ctx) => notice('error', `subscription error: ${ctx.error.message}`));
    current.subscribe();
  }

  // The room's last messages, up to the position the subscribe reply gave
  // (live ones after it arrive as publications), put above anything
  // received since.
  async function loadHistory(current, position) {
    try {
      const result = await current.history({ limit: HISTORY_LIMIT, reverse: true });
      if (current !== sub) return;
      const top = position ? position.offset : Infinity;
      const older = result.publications.filter((p) => p.offset === undefined || p.offset <= top);
      older.reverse();
      log.prepend(...older.map((p) => message(p, true)));
      log.scrollTop = log.scrollHeight;
    } catch (e) {
      notice('error', `history unavailable: ${e.message}`);
    }
  }

  async function refreshPresence(current) {
    try {
      const result = await current.presence();
      if (current !== sub) return;
      const users = new Map();
      for (const info of Object.values(result.clients)) {
        users.set(info.user, (users.get(info.user) || 0) + 1);
      }
      const items = [...users.keys()].sort().map((user) => {
        const li = document.createElement('li');
        li.textContent = user;
        if (users.get(user) > 1) li.dataset.connections = users.get(user);
        if (user === me) li.classList.add('me');
        return li;
      });
      const list = $('presence');
      list.replaceChildren(...items);
      list.classList.remove('stale');
    } catch (e) {
      // A reconnect is under way: `subscribed` will ask again.
    }
  }

  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    $('login-error').textContent = '';
    start($('login-user').value.trim(), $('login-room').value.trim()).catch((err) => {
      $('login-error').textContent = err.message;
    });
  });

  $('send').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('text');
    const text = input.value.trim();
    if (!text || !sub) return;
    sub.publish({ user: me, text }).then(
      () => { input.value = ''; },
      (err) => notice('error', `not sent: ${err.message}`),
    );
  });

  // Leave and come back by hand: the subscription stays, so connecting
  // again recovers what was missed, as after a network outage.
  $('toggle').addEventListener('click', () => {
    if (client.state === 'disconnected') client.connect();
    else client.disconnect();
  });

  $('switch').addEventListener('submit', (e) => {
    e.preventDefault();
    const room = $('switch-room').value.trim();
    $('switch-room').value = '';
    if (NAME.test(room)) join(room);
  });

  // ?user=NAME&room=ROOM enters at once (a link to share, or a test).
  const params = new URLSearchParams(location.search);
  const user = params.get('user');
  const room = params.get('room') || 'lobby';
  if (user) $('login-user').value = user;
  $('login-room').value = room;
  if (user && NAME.test(user) && NAME.test(room)) {
    start(user, room).catch((err) => {
      $('login-error').textContent = err.message;
    });
  }
})();
