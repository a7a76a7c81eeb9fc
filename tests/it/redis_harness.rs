//! The Redis test harness itself: a real redis-server starts, answers, restarts on its port and dies.

use crate::harness::RedisServer;

#[test]
fn redis_server_starts_answers_and_restarts_on_the_same_port() {
    let mut redis = RedisServer::start();
    assert!((23000..24000).contains(&redis.port()));
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    assert_eq!(redis.cli(&["PING"]), "PONG");
    assert_eq!(redis.cli(&["SET", "k", "v"]), "OK");
    let port = redis.port();
    redis.restart();
    assert_eq!(redis.port(), port);
    assert_eq!(redis.cli(&["GET", "k"]), "", "nothing persisted");
    redis.stop();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "stopped server still accepts"
    );
}
