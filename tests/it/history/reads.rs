//! `history` requests, the admin routes, removal and the byte bound.

use serde_json::json;

use super::*;
use crate::harness::{get, post};

#[test]
fn history_pages_forwards_backwards_since_and_limit_zero() {
    let server = server(&[]);
    let (mut c, _) = server.ws_client();
    let mut epoch = String::new();
    for n in 1..=5 {
        epoch = publish(&mut c, "h:p", json!({"n": n}))["epoch"]
            .as_str()
            .unwrap()
            .to_string();
    }
    let page = |c: &mut Client, extra: serde_json::Value| {
        let mut request = json!({"type": "history", "channel": "h:p", "id": 7});
        for (k, v) in extra.as_object().unwrap() {
            request[k] = v.clone();
        }
        c.send_json(&request);
        c.recv_json()
    };
    let all = page(&mut c, json!({"limit": 10}));
    assert_eq!(all["offset"], 5, "{all}");
    assert_eq!(all["epoch"], epoch.as_str());
    assert_eq!(all["id"], 7);
    let offsets = |p: &serde_json::Value| -> Vec<u64> {
        p["publications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["offset"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(offsets(&all), vec![1, 2, 3, 4, 5]);
    assert_eq!(all["publications"][0]["data"], json!({"n": 1}));
    let since = page(
        &mut c,
        json!({"limit": 2, "since": {"offset": 2, "epoch": epoch}}),
    );
    assert_eq!(offsets(&since), vec![3, 4]);
    let back = page(&mut c, json!({"limit": 2, "reverse": true}));
    assert_eq!(offsets(&back), vec![5, 4]);
    let top = page(&mut c, json!({"limit": 0}));
    assert_eq!((offsets(&top), top["offset"].clone()), (vec![], json!(5)));
    let wrong = page(
        &mut c,
        json!({"limit": 2, "since": {"offset": 2, "epoch": "nope"}}),
    );
    assert_eq!(wrong["code"], "UNRECOVERABLE_POSITION", "{wrong}");
    c.send_json(&json!({"type": "history", "channel": "plain"}));
    assert_eq!(c.recv_json()["code"], "HISTORY_DISABLED");
}

#[test]
fn admin_publish_history_and_remove() {
    let server = server(&[]);
    let admin = server.admin_addr();
    let r = post(admin, "/api/publish", r#"{"channel":"h:adm","data":"a"}"#);
    assert_eq!(r.json()["offset"], 1, "{r:?}");
    let epoch = r.json()["epoch"].as_str().unwrap().to_string();
    post(admin, "/api/publish", r#"{"channel":"h:adm","data":"b"}"#);
    let r = get(admin, "/api/history?channel=h:adm&limit=10");
    assert_eq!(
        r.json(),
        json!({"channel": "h:adm", "publications": [{"data": "a", "offset": 1}, {"data": "b", "offset": 2}],
               "offset": 2, "epoch": epoch})
    );
    let r = get(
        admin,
        &format!("/api/history?channel=h:adm&limit=10&since=1&epoch={epoch}"),
    );
    assert_eq!(
        r.json()["publications"].as_array().unwrap().len(),
        1,
        "{r:?}"
    );
    let r = post(admin, "/api/history/remove", r#"{"channel":"h:adm"}"#);
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(admin, "/api/publish", r#"{"channel":"h:adm","data":"c"}"#);
    assert_eq!(r.json()["offset"], 1, "a new stream: {r:?}");
    assert_ne!(r.json()["epoch"], epoch.as_str(), "with a new epoch");
    let r = get(admin, "/api/history?channel=plain");
    assert_eq!(r.status, 404, "{r:?}");
}

#[test]
fn the_byte_bound_evicts_the_oldest_publications() {
    // 2 shards: 8 KiB each. 100 publications of ~200 B cannot all stay.
    let server = server(&["--history-max-bytes", "16KiB"]);
    let (mut c, _) = server.ws_client();
    let big = "x".repeat(200);
    for _ in 0..100 {
        publish(&mut c, "h:big", json!(big));
    }
    c.send_json(&json!({"type": "history", "channel": "h:big", "limit": 100}));
    let page = c.recv_json();
    let held = page["publications"].as_array().unwrap();
    assert!(!held.is_empty() && held.len() < 100, "held {}", held.len());
    assert_eq!(held.last().unwrap()["offset"], 100, "the newest stay");
    // Counted in /metrics.
    let body = get(server.admin_addr(), "/metrics").body;
    let sum = |family: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with(family))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(
        sum("corecast_history_evictions_total"),
        (100 - held.len()) as f64,
        "{body}"
    );
    assert_eq!(
        sum("corecast_history_publications{"),
        held.len() as f64,
        "{body}"
    );
}

#[test]
fn channel_records_are_capped_and_only_empty_ones_evicted() {
    let file =
        crate::auth::config_file("[namespaces.h]\nhistory_size = 10\nhistory_ttl = \"5m\"\n");
    let server = crate::harness::TestServer::start(&[
        "--shards",
        "1",
        "--history-max-channels",
        "2",
        "--config",
        file.to_str().unwrap(),
    ]);
    let (mut c, _) = server.ws_client();
    publish(&mut c, "h:kept", json!(1));
    for name in ["h:a", "h:b", "h:c"] {
        subscribe(&mut c, json!({"type": "subscribe", "channel": name}));
    }
    let body = get(server.admin_addr(), "/metrics").body;
    let value = |family: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with(family))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(value("corecast_history_channels{"), 2.0, "{body}");
    assert_eq!(
        value("corecast_history_channel_evictions_total"),
        2.0,
        "{body}"
    );
    // The channel with a publication was never evicted.
    let r = get(server.admin_addr(), "/api/history?channel=h:kept&limit=1");
    assert_eq!(r.json()["offset"], 1, "{r:?}");
}
