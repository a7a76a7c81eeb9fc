//! The admin listener (`--admin-addr`): /metrics (OpenMetrics), /latency
//! (.hgrm), /health, the periodic latency report, the server API under
//! /api/ (publish, broadcast, channels, stats, disconnect), its HTTP rules
//! (methods, bodies, keep-alive, bearer token), and admin-related startup
//! failures.
//!
//! Counters are read by scraping /metrics and summing over the `shard`
//! label. A scrape is answered after every shard has handled the messages
//! queued before it, so once a client has seen the effect of its traffic (a
//! reply, a delivered message, a close frame or a log line written on the
//! shard thread right before the counter moves) the next scrape shows it; no
//! test polls /metrics.

mod api;
mod health;
mod http_rules;
mod latency;
mod metrics;
mod openmetrics;
mod startup;
