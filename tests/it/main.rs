//! Integration tests: the real `corecast` binary, real sockets, real
//! WebSocket clients. See harness/ for how a server is started.

mod admin;
mod auth;
mod centrifugo;
mod cluster;
mod config_file;
mod cross_shard;
mod demo;
mod harness;
mod history;
mod http;
mod limits;
mod msgpack;
mod proxy;
mod pubsub;
mod redis_harness;
mod reliability;
mod restart;
mod rfc6455;
mod shutdown;
