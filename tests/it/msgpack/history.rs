//! History channels for a MessagePack client: acks with offsets, history
//! reads and recovered publications all in MessagePack.

use super::*;

#[test]
fn history_reads_and_recovery_come_in_msgpack() {
    let server = crate::history::server(&[]);
    let (mut publisher, _) = msgpack_client(&server);
    let mut epoch = Value::Null;
    for i in 1..=3u64 {
        let ack = publisher.ask(json!({"type":"publish","channel":"h:mp","data":{"i":i},"id":i}));
        assert_eq!(ack["type"], "published", "{ack}");
        assert_eq!(ack["offset"], i, "{ack}");
        assert_eq!(ack["id"], i, "{ack}");
        epoch = ack["epoch"].clone();
    }
    let (mut reader, _) = msgpack_client(&server);
    let history = reader.ask(json!({"type":"history","channel":"h:mp","limit":10}));
    assert_eq!(
        history,
        json!({"type":"history","channel":"h:mp","publications":[
            {"data":{"i":1},"offset":1},{"data":{"i":2},"offset":2},{"data":{"i":3},"offset":3}
        ],"offset":3,"epoch":epoch})
    );
    // Recovery after offset 1: the two missed publications, then subscribed.
    reader.send(
        &json!({"type":"subscribe","channel":"h:mp","recover":true,"offset":1,"epoch":epoch}),
    );
    for i in 2..=3u64 {
        assert_eq!(
            reader.recv(),
            json!({"type":"message","channel":"h:mp","data":{"i":i},"offset":i})
        );
    }
    assert_eq!(
        reader.recv(),
        json!({"type":"subscribed","channel":"h:mp","recovered":true,"offset":3,"epoch":epoch})
    );
    // And live publications after it, from a JSON publisher.
    let (mut json_pub, _) = server.ws_client();
    let ack = crate::history::publish(&mut json_pub, "h:mp", json!("live"));
    assert_eq!(ack["offset"], 4, "{ack}");
    assert_eq!(
        reader.recv(),
        json!({"type":"message","channel":"h:mp","data":"live","offset":4})
    );
}
