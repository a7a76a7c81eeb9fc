//! Client and Subscriber against a real redis-server (tests/it/harness/redis.rs) and against fake servers that go silent, each test on its own glommio executor.

use std::future::{poll_fn, Future};
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::mpsc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::future::{or, poll_once};
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::timer::Timer;
use glommio::{LocalExecutorBuilder, Placement};

use super::*;

#[path = "../../tests/it/harness/redis.rs"]
#[allow(dead_code)] // The integration tests use the rest.
mod redis_server;
use redis_server::RedisServer;

/// Longest any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(5);

fn opts() -> RedisOptions {
    RedisOptions {
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(300),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..RedisOptions::default()
    }
}

/// Runs `body` on a fresh single-thread glommio executor.
fn run<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    // glommio's rings need memlock; raise it as the server does at start.
    let _ = crate::sys::raise_memlock();
    LocalExecutorBuilder::new(Placement::Unbound)
        .name("redis-test")
        .spawn(body)
        .expect("spawn executor")
        .join()
        .expect("test body");
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    let expire = async {
        Timer::new(WAIT).await;
        None
    };
    or(async { Some(fut.await) }, expire)
        .await
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Polls all futures in the same turns (so their commands are queued in
/// one executor turn) and returns their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut done = true;
        for (fut, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => done = false,
                }
            }
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

fn url(text: &str) -> RedisUrl {
    text.parse().expect("test URL")
}

async fn client_for(server: &RedisServer) -> Rc<Client> {
    let client = Client::start(url(&server.url()), opts(), "test-client");
    within("client up", client.wait_up()).await;
    client
}

#[derive(Debug, PartialEq)]
enum Seen {
    Message(Vec<u8>, Bytes),
    Up,
    Down,
}

/// A subscriber whose events arrive on a channel.
fn subscriber(url_text: &str, opts: RedisOptions) -> (Rc<Subscriber>, LocalReceiver<Seen>) {
    let (tx, rx) = local_channel::new_unbounded();
    let on_event: OnEvent = Box::new(move |event| {
        let seen = match event {
            PubSubEvent::Message { channel, payload } => Seen::Message(channel.to_vec(), payload),
            PubSubEvent::Up => Seen::Up,
            PubSubEvent::Down => Seen::Down,
        };
        // The link task outlives the test body (the Down of close()).
        let _ = tx.try_send(seen);
    });
    (
        Subscriber::start(url(url_text), opts, "test-sub", on_event),
        rx,
    )
}

async fn next(rx: &LocalReceiver<Seen>) -> Seen {
    within("a pub/sub event", rx.recv())
        .await
        .expect("sender alive")
}

fn publish(channel: &str, payload: &str) -> Cmd {
    Cmd::new("PUBLISH").arg(channel).arg(payload)
}

/// A host name (not a literal address) is resolved off the shard's thread
/// and connects; a name that resolves to nothing says so.
#[test]
fn a_host_name_resolves_and_connects() {
    let server = RedisServer::start();
    run(move || async move {
        let named = format!("redis://localhost:{}", server.port());
        let client = Client::start(url(&named), opts(), "test-client");
        within("client up", client.wait_up()).await;
        assert_eq!(
            client.call(Cmd::new("PING")).await,
            Ok(Reply::Simple("PONG".into()))
        );
        client.close();
        let nowhere = Client::start(
            url("redis://corecast-test.invalid:6379"),
            opts(),
            "test-client",
        );
        let said = within("a resolve error", async {
            loop {
                if let Some(e) = nowhere.stats().last_error {
                    return e;
                }
                Timer::new(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(said.contains("resolve"), "{said}");
        nowhere.close();
    });
}

#[test]
fn pipelined_calls_get_their_own_replies_in_order() {
    let server = RedisServer::start();
    run(move || async move {
        let client = client_for(&server).await;
        let calls = (0..500).map(|i| {
            let client = client.clone();
            async move {
                let echo = client.call(Cmd::new("ECHO").arg_int(i)).await;
                let incr = client.call(Cmd::new("INCR").arg("n")).await;
                (i, echo, incr)
            }
        });
        for (i, echo, incr) in join_all(calls.collect()).await {
            assert_eq!(echo, Ok(Reply::Bulk(i.to_string().into())));
            assert!(matches!(incr, Ok(Reply::Int(_))), "{incr:?}");
        }
        let incrs = (0..100).map(|_| client.call(Cmd::new("INCR").arg("m")));
        let values: Vec<_> = join_all(incrs.collect()).await;
        let want: Vec<_> = (1..=100).map(|n| Ok(Reply::Int(n))).collect();
        assert_eq!(values, want, "replies matched FIFO");
        let stats = client.stats();
        assert_eq!(
            (stats.commands, stats.in_flight, stats.errors),
            (1100, 0, 0)
        );
        assert_eq!(stats.latency_count, 1100);
        client.close();
    });
}

#[test]
fn calls_of_one_turn_leave_in_one_write() {
    let (port, chunks) = fake_server(Answer::Pong);
    run(move || async move {
        let client = Client::start(url(&format!("redis://127.0.0.1:{port}")), opts(), "x");
        within("client up", client.wait_up()).await;
        let pings = (0..100).map(|_| client.call(Cmd::new("PING")));
        let replies = join_all(pings.collect()).await;
        assert!(replies
            .iter()
            .all(|r| *r == Ok(Reply::Simple("PONG".into()))));
        let first = chunks.recv_timeout(WAIT).expect("a write after login");
        assert_eq!(
            first,
            100 * b"*1\r\n$4\r\nPING\r\n".len(),
            "one write for the turn"
        );
        client.close();
    });
}

#[test]
fn error_reply_is_server_error_and_the_pipeline_stays_in_step() {
    let server = RedisServer::start();
    run(move || async move {
        let client = client_for(&server).await;
        let bad = client.call(Cmd::new("NOSUCHCOMMAND")).await;
        assert!(
            matches!(&bad, Err(RedisError::Server(m)) if m.starts_with("ERR")),
            "{bad:?}"
        );
        let ok = client.call(Cmd::new("ECHO").arg("after")).await;
        assert_eq!(ok, Ok(Reply::Bulk(Bytes::from_static(b"after"))));
        client.close();
    });
}

#[test]
fn eval_falls_back_to_eval_on_noscript_then_uses_evalsha() {
    let server = RedisServer::start();
    run(move || async move {
        let client = client_for(&server).await;
        let script = Script::new("return {KEYS[1], ARGV[1]}");
        server.cli(&["SCRIPT", "FLUSH"]);
        server.cli(&["CONFIG", "RESETSTAT"]);
        for _ in 0..3 {
            let reply = client.eval(&script, &[b"k"], &[b"v"]).await;
            let want = Reply::Array(vec![Reply::Bulk("k".into()), Reply::Bulk("v".into())]);
            assert_eq!(reply, Ok(want));
        }
        assert_eq!(server.cli(&["SCRIPT", "EXISTS", script.sha1()]), "1");
        let stats = server.cli(&["INFO", "commandstats"]);
        assert!(stats.contains("cmdstat_eval:calls=1,"), "one EVAL: {stats}");
        client.close();
    });
}

#[test]
fn busy_at_max_in_flight() {
    let server = RedisServer::start();
    run(move || async move {
        let opts = RedisOptions {
            max_in_flight: 2,
            ..opts()
        };
        let client = Client::start(url(&server.url()), opts, "busy");
        within("client up", client.wait_up()).await;
        let mut first = Box::pin(client.call(Cmd::new("PING")));
        let mut second = Box::pin(client.call(Cmd::new("PING")));
        assert!(poll_once(&mut first).await.is_none());
        assert!(poll_once(&mut second).await.is_none());
        assert_eq!(client.call(Cmd::new("PING")).await, Err(RedisError::Busy));
        assert!(first.await.is_ok() && second.await.is_ok());
        assert!(client.call(Cmd::new("PING")).await.is_ok(), "room again");
        client.close();
    });
}

#[test]
fn silent_server_times_out_and_the_link_is_declared_dead() {
    let (port, _chunks) = fake_server(Answer::Nothing);
    run(move || async move {
        let opts = opts();
        let client = Client::start(url(&format!("redis://127.0.0.1:{port}")), opts.clone(), "x");
        within("client up", client.wait_up()).await;
        let sent = Instant::now();
        assert_eq!(
            client.call(Cmd::new("PING")).await,
            Err(RedisError::Timeout)
        );
        while client.state() == LinkState::Up {
            assert!(sent.elapsed() < 2 * opts.command_timeout, "link still up");
            Timer::new(Duration::from_millis(5)).await;
        }
        let stats = client.stats();
        assert!(
            stats
                .last_error
                .as_ref()
                .is_some_and(|e| e.contains("no reply")),
            "{stats:?}"
        );
        assert_eq!(
            client.call(Cmd::new("PING")).await,
            Err(RedisError::Unavailable("redis link not up".into()))
        );
        client.close();
    });
}

#[test]
fn idle_subscriber_probes_and_finds_a_silent_server_dead() {
    let (port, _chunks) = fake_server(Answer::Nothing);
    run(move || async move {
        let opts = RedisOptions {
            probe_interval: Duration::from_millis(200),
            ..opts()
        };
        let (sub, events) = subscriber(&format!("redis://127.0.0.1:{port}"), opts);
        assert_eq!(next(&events).await, Seen::Up);
        let up = Instant::now();
        assert_eq!(next(&events).await, Seen::Down);
        assert!(
            up.elapsed() < Duration::from_millis(900),
            "{:?}",
            up.elapsed()
        );
        sub.close();
    });
}

#[test]
fn subscribe_delivers_and_unsubscribe_stops_delivery() {
    let server = RedisServer::start();
    run(move || async move {
        let client = client_for(&server).await;
        let (sub, events) = subscriber(&server.url(), opts());
        assert_eq!(next(&events).await, Seen::Up);
        let subs = ["a", "b"].map(|c| sub.subscribe(Bytes::from_static(c.as_bytes())));
        assert!(join_all(subs.into()).await.iter().all(Result::is_ok));
        assert_eq!(client.call(publish("a", "1")).await, Ok(Reply::Int(1)));
        assert_eq!(
            next(&events).await,
            Seen::Message(b"a".to_vec(), "1".into())
        );
        sub.unsubscribe(b"a");
        // Confirmations come in order: once c is confirmed, a is gone.
        sub.subscribe(Bytes::from_static(b"c"))
            .await
            .expect("subscribe c");
        assert_eq!(client.call(publish("a", "2")).await, Ok(Reply::Int(0)));
        assert_eq!(client.call(publish("b", "3")).await, Ok(Reply::Int(1)));
        assert_eq!(
            next(&events).await,
            Seen::Message(b"b".to_vec(), "3".into())
        );
        sub.close();
        client.close();
    });
}

#[test]
fn subscribe_unsubscribe_in_quick_succession_ends_in_the_last_state() {
    let server = RedisServer::start();
    run(move || async move {
        let client = client_for(&server).await;
        let (sub, events) = subscriber(&server.url(), opts());
        assert_eq!(next(&events).await, Seen::Up);
        let first = sub.subscribe(Bytes::from_static(b"on"));
        let mut first = Box::pin(first);
        assert!(poll_once(&mut first).await.is_none());
        sub.unsubscribe(b"on");
        let again = sub.subscribe(Bytes::from_static(b"on"));
        sub.subscribe(Bytes::from_static(b"off"))
            .await
            .expect("off");
        sub.unsubscribe(b"off");
        let off_again = sub.subscribe(Bytes::from_static(b"off"));
        sub.unsubscribe(b"off");
        let (a, b, c) = (first.await, again.await, off_again.await);
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        assert_eq!(client.call(publish("off", "x")).await, Ok(Reply::Int(0)));
        assert_eq!(client.call(publish("on", "y")).await, Ok(Reply::Int(1)));
        assert_eq!(
            next(&events).await,
            Seen::Message(b"on".to_vec(), "y".into())
        );
        sub.close();
        client.close();
    });
}

#[test]
fn redis_restart_goes_down_then_up_with_channels_resubscribed() {
    let mut server = RedisServer::start();
    run(move || async move {
        let client = client_for(&server).await;
        let (sub, events) = subscriber(&server.url(), opts());
        assert_eq!(next(&events).await, Seen::Up);
        let channels: Vec<Bytes> = (0..1200).map(|i| Bytes::from(format!("ch{i}"))).collect();
        let subs = channels.iter().map(|c| sub.subscribe(c.clone()));
        assert!(join_all(subs.collect()).await.iter().all(Result::is_ok));

        server.kill();
        assert_eq!(next(&events).await, Seen::Down);
        let killed = Instant::now();
        loop {
            match client.call(Cmd::new("PING")).await {
                Err(RedisError::Unavailable(_)) => break,
                other => assert!(killed.elapsed() < WAIT, "still {other:?}"),
            }
            Timer::new(Duration::from_millis(5)).await;
        }
        assert!(matches!(
            sub.subscribe(Bytes::from_static(b"late")).await,
            Err(RedisError::Unavailable(_))
        ));

        server.restart();
        assert_eq!(next(&events).await, Seen::Up);
        within("client back up", client.wait_up()).await;
        assert_eq!(server.cli(&["PUBSUB", "NUMSUB", "ch1199"]), "ch1199\n1");
        assert_eq!(server.cli(&["PUBSUB", "NUMSUB", "late"]), "late\n0");
        assert_eq!(client.call(publish("ch7", "back")).await, Ok(Reply::Int(1)));
        assert_eq!(
            next(&events).await,
            Seen::Message(b"ch7".to_vec(), "back".into())
        );
        assert_eq!(client.stats().reconnects, 1);
        assert_eq!(sub.stats().reconnects, 1);
        sub.close();
        client.close();
    });
}

/// What a fake server does after answering the login.
#[derive(Clone, Copy)]
enum Answer {
    /// Reads and never answers.
    Nothing,
    /// Answers every `PING` with `+PONG`.
    Pong,
}

/// A TCP server on a std thread that answers the login (`+OK`) and then
/// `answer`s; reports the size of every read after the login.
fn fake_server(answer: Answer) -> (u16, mpsc::Receiver<usize>) {
    // The kernel's pick: a probed port could be taken by another process
    // between the probe and this bind (CI saw exactly that).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake server");
    let port = listener.local_addr().expect("fake server address").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 64 * 1024];
                let mut logged_in = false;
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    if !logged_in {
                        // The login is one small write: CLIENT SETNAME.
                        logged_in = true;
                        let _ = conn.write_all(b"+OK\r\n");
                        continue;
                    }
                    let _ = tx.send(n);
                    if let Answer::Pong = answer {
                        let n_pings = buf[..n].windows(4).filter(|w| w == b"PING").count();
                        let _ = conn.write_all(&b"+PONG\r\n".repeat(n_pings));
                    }
                }
            });
        }
    });
    (port, rx)
}

#[test]
fn closed_client_fails_calls_and_stops_reconnecting() {
    let server = RedisServer::start();
    run(move || async move {
        let client = client_for(&server).await;
        client.close();
        assert_eq!(client.state(), LinkState::Down);
        assert!(matches!(
            client.call(Cmd::new("PING")).await,
            Err(RedisError::Unavailable(_))
        ));
    });
}
