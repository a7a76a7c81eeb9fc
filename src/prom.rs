//! `/metrics`: every shard's report encoded in the OpenMetrics text format
//! (which Prometheus scrapes) by prometheus-client, labelled by shard.
//!
//! Nothing here is kept between scrapes: each scrape gathers fresh reports
//! over the bus and encodes them through a one-off `Collector`.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::latency;
use crate::message::ErrorCode;
use crate::metrics::{Counters, CLOSE_REASONS, HANDSHAKE_FAILURES};
use crate::shard::ShardReport;

/// Content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes the reports as OpenMetrics text.
pub fn encode(reports: Vec<ShardReport>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(reports)));
    let mut out = String::new();
    // Writing into a String cannot fail.
    prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode to string");
    out
}

#[derive(Debug)]
struct Scrape(Vec<ShardReport>);

type Labels = Vec<(&'static str, String)>;

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let shard = |r: &ShardReport| -> Labels { vec![("shard", r.shard.0.to_string())] };
        let counter =
            |enc: &mut DescriptorEncoder, name: &str, help: &str, get: fn(&Counters) -> u64| {
                family(
                    enc,
                    name,
                    help,
                    MetricType::Counter,
                    self.0
                        .iter()
                        .map(|r| (shard(r), Value::Counter(get(&r.counters)))),
                )
            };
        let gauge =
            |enc: &mut DescriptorEncoder, name: &str, help: &str, get: fn(&ShardReport) -> u64| {
                family(
                    enc,
                    name,
                    help,
                    MetricType::Gauge,
                    self.0.iter().map(|r| (shard(r), Value::Gauge(get(r)))),
                )
            };
        // A counter split by one more label, e.g. closes by "reason":
        // `names[i]` labels `get(counters)[i]`.
        let labelled = |enc: &mut DescriptorEncoder,
                        name: &str,
                        help: &str,
                        label: &'static str,
                        names: &[&'static str],
                        get: fn(&Counters) -> &[u64]| {
            let rows = self.0.iter().flat_map(|r| {
                names.iter().zip(get(&r.counters)).map(move |(value, n)| {
                    let labels = vec![("shard", r.shard.0.to_string()), (label, value.to_string())];
                    (labels, Value::Counter(*n))
                })
            });
            family(enc, name, help, MetricType::Counter, rows)
        };
        gauge(
            &mut enc,
            "corecast_connections_open",
            "Open WebSocket connections.",
            |r| r.connections,
        )?;
        counter(
            &mut enc,
            "corecast_connections_accepted",
            "TCP connections accepted on the public port.",
            |c| c.accepted,
        )?;
        counter(
            &mut enc,
            "corecast_connections_refused",
            "Connections refused with 503 at --max-connections.",
            |c| c.refused,
        )?;
        labelled(
            &mut enc,
            "corecast_connections_closed",
            "WebSocket connections ended, by reason.",
            "reason",
            &CLOSE_REASONS,
            |c| &c.closed,
        )?;
        labelled(
            &mut enc,
            "corecast_handshake_failures",
            "Requests on the public port not upgraded, by HTTP status (dropped: no complete request).",
            "status",
            &HANDSHAKE_FAILURES,
            |c| &c.handshake_failures,
        )?;
        counter(
            &mut enc,
            "corecast_messages_received",
            "Data messages received from clients.",
            |c| c.messages_received,
        )?;
        counter(
            &mut enc,
            "corecast_messages_published",
            "Publishes accepted (client and API).",
            |c| c.published,
        )?;
        counter(
            &mut enc,
            "corecast_messages_delivered",
            "Frames queued to subscribers by fan-out and broadcast.",
            |c| c.delivered,
        )?;
        counter(
            &mut enc,
            "corecast_bytes_received",
            "Bytes read from WebSocket clients.",
            |c| c.bytes_in,
        )?;
        counter(
            &mut enc,
            "corecast_bytes_sent",
            "Bytes written to WebSocket clients.",
            |c| c.bytes_out,
        )?;
        counter(
            &mut enc,
            "corecast_slow_consumer_disconnects",
            "Connections closed for exceeding --max-outbound-bytes.",
            |c| c.slow_consumers(),
        )?;
        labelled(
            &mut enc,
            "corecast_protocol_errors",
            "JSON requests answered with an error, by code.",
            "code",
            &ErrorCode::ALL.map(ErrorCode::as_str),
            |c| &c.request_errors,
        )?;
        gauge(
            &mut enc,
            "corecast_subscriptions",
            "Subscriptions held by local connections.",
            |r| r.subscriptions,
        )?;
        gauge(
            &mut enc,
            "corecast_channels",
            "Channels with at least one local subscriber.",
            |r| r.channels,
        )?;
        gauge(
            &mut enc,
            "corecast_outbox_bytes",
            "Bytes queued for clients, not yet written.",
            |r| r.outbox_bytes,
        )?;
        counter(
            &mut enc,
            "corecast_bus_messages_sent",
            "Messages sent to other shards.",
            |c| c.bus_sent,
        )?;
        counter(
            &mut enc,
            "corecast_bus_messages_received",
            "Messages received from other shards.",
            |c| c.bus_received,
        )?;
        counter(
            &mut enc,
            "corecast_flush_passes",
            "Flush passes: each writes every outbox fan-out filled since the last.",
            |c| c.flush_passes,
        )?;
        counter(
            &mut enc,
            "corecast_compressed_frames",
            "Frames compressed for permessage-deflate: once per shard per publish, once per reply.",
            |c| c.compressed_frames,
        )?;
        counter(
            &mut enc,
            "corecast_converted_frames",
            "Messages converted from native JSON to another encoding (MessagePack, Centrifugo): once per encoding per shard per publish, once per reply.",
            |c| c.converted_frames,
        )?;
        counter(
            &mut enc,
            "corecast_inflated_messages",
            "Compressed (permessage-deflate) messages received and inflated.",
            |c| c.inflated_messages,
        )?;
        counter(
            &mut enc,
            "corecast_ticker_passes",
            "Heartbeat ticker passes (each visits a slice of the connection table).",
            |c| c.ticker_passes,
        )?;
        gauge(
            &mut enc,
            "corecast_ticker_pass_longest_microseconds",
            "Longest heartbeat ticker pass since start, in CPU time (whole microseconds).",
            |r| r.counters.ticker_pass_max_ns / 1000,
        )?;
        gauge(
            &mut enc,
            "corecast_history_bytes",
            "Bytes the shard's history channels hold (payload plus 64 B per publication).",
            |r| r.history_stats.bytes as u64,
        )?;
        gauge(
            &mut enc,
            "corecast_history_publications",
            "Publications held in the shard's history channels.",
            |r| r.history_stats.publications as u64,
        )?;
        gauge(
            &mut enc,
            "corecast_history_channels",
            "History channels whose home is the shard (with publications or only their position).",
            |r| r.history_stats.channels as u64,
        )?;
        counter(
            &mut enc,
            "corecast_history_evictions",
            "History publications evicted, oldest first, to stay under --history-max-bytes.",
            |c| c.history_evictions,
        )?;
        counter(
            &mut enc,
            "corecast_history_channel_evictions",
            "History channel records without publications evicted to stay under --history-max-channels.",
            |c| c.history_channel_evictions,
        )?;
        counter(
            &mut enc,
            "corecast_redis_received",
            "Redis mode: messages received on the shard's pub/sub links.",
            |c| c.redis_received,
        )?;
        counter(
            &mut enc,
            "corecast_redis_dropped",
            "Redis mode: messages from Redis dropped (malformed), and publishes without a waiting caller that Redis did not take.",
            |c| c.redis_dropped + c.redis_publish_failures,
        )?;
        counter(
            &mut enc,
            "corecast_redis_gap_repairs",
            "Redis mode: gaps in a history channel's live delivery repaired (or tried) from the stream.",
            |c| c.redis_gap_repairs,
        )?;
        counter(
            &mut enc,
            "corecast_redis_insufficient_state",
            "Redis mode: channels whose subscribers were evicted (a gap no longer in the stream): /ws clients closed with 4010, Centrifugo clients sent unsubscribe 2500.",
            |c| c.redis_evictions,
        )?;
        let links = |enc: &mut DescriptorEncoder,
                     name: &str,
                     help: &str,
                     kind: MetricType,
                     pick: fn(&crate::shard::RedisLinkReport) -> Value| {
            let rows = self.0.iter().flat_map(|r| {
                r.redis_links.iter().map(move |l| {
                    let mut labels = shard(r);
                    labels.push(("instance", l.addr.clone()));
                    (labels, pick(l))
                })
            });
            family(enc, name, help, kind, rows)
        };
        links(
            &mut enc,
            "corecast_redis_up",
            "Redis mode: 1 when the shard's command and pub/sub links to the instance are both up.",
            MetricType::Gauge,
            |l| Value::Gauge(u64::from(l.up)),
        )?;
        links(
            &mut enc,
            "corecast_redis_reconnects",
            "Redis mode: reconnects of the shard's links to the instance since start.",
            MetricType::Counter,
            |l| Value::Counter(l.reconnects),
        )?;
        links(
            &mut enc,
            "corecast_redis_commands",
            "Redis mode: commands the instance answered on the shard's command link.",
            MetricType::Counter,
            |l| Value::Counter(l.commands),
        )?;
        links(
            &mut enc,
            "corecast_redis_command_seconds",
            "Redis mode: total round-trip time of those commands (divide by corecast_redis_commands for the mean).",
            MetricType::Counter,
            |l| Value::CounterF(l.latency_sum_us as f64 / 1e6),
        )?;
        links(
            &mut enc,
            "corecast_redis_messages",
            "Redis mode: pub/sub messages the shard received from the instance.",
            MetricType::Counter,
            |l| Value::Counter(l.messages),
        )?;
        gauge(
            &mut enc,
            "corecast_bus_queue_depth",
            "Cross-shard messages waiting for room in a full channel.",
            |r| r.bus_queued,
        )?;
        let hist =
            |enc: &mut DescriptorEncoder,
             name: &str,
             help: &str,
             pick: fn(&latency::LatencySnapshot) -> &hdrhistogram::Histogram<u64>| {
                let rows = self.0.iter().filter_map(|r| {
                    r.latency
                        .as_ref()
                        .map(|l| (shard(r), Value::Histogram(latency::prom_buckets(pick(l)))))
                });
                family(enc, name, help, MetricType::Histogram, rows)
            };
        hist(
            &mut enc,
            "corecast_fanout_latency_seconds",
            "Publish entering the server to its frame handed to the kernel, per subscriber.",
            |l| &l.fanout,
        )?;
        hist(
            &mut enc,
            "corecast_bus_hop_latency_seconds",
            "Publish entering the server to its arrival on another shard.",
            |l| &l.bus_hop,
        )?;
        Ok(())
    }
}

enum Value {
    Counter(u64),
    CounterF(f64),
    Gauge(u64),
    Histogram((f64, u64, Vec<(f64, u64)>)),
}

fn family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl Iterator<Item = (Labels, Value)>,
) -> fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in rows {
        let one = metric.encode_family(&labels)?;
        Sample(value).encode(one)?;
    }
    Ok(())
}

struct Sample(Value);

impl EncodeMetric for Sample {
    fn encode(&self, mut enc: MetricEncoder) -> fmt::Result {
        match &self.0 {
            Value::Counter(v) => enc.encode_counter::<NoLabelSet, _, u64>(v, None),
            Value::CounterF(v) => enc.encode_counter::<NoLabelSet, _, u64>(v, None),
            Value::Gauge(v) => enc.encode_gauge(&(*v as i64)),
            Value::Histogram((sum, count, buckets)) => {
                enc.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)
            }
        }
    }

    fn metric_type(&self) -> MetricType {
        match self.0 {
            Value::Counter(_) | Value::CounterF(_) => MetricType::Counter,
            Value::Gauge(_) => MetricType::Gauge,
            Value::Histogram(_) => MetricType::Histogram,
        }
    }
}
