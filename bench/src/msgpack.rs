//! `--encoding msgpack`: connections to /ws ask for `corecast.msgpack`
//! (`Sec-WebSocket-Protocol`), and the driver converts at its edge so the
//! workloads keep speaking JSON text: what a workload sends is turned into
//! a MessagePack binary frame, and what the server sends back into JSON
//! text (map order kept, so `{"type":"message"...` still leads). The
//! conversion costs the bench CPU per message, on the bench's cores, not
//! the server's.

use std::io::Write;

use rmpv::Value;

/// The upgrade header asking for MessagePack on corecast's /ws.
pub const OFFER: &str = "Sec-WebSocket-Protocol: corecast.msgpack";

/// True when an upgrade response head chose MessagePack.
pub fn agreed(head: &[u8]) -> bool {
    String::from_utf8_lossy(head)
        .to_ascii_lowercase()
        .contains("\r\nsec-websocket-protocol: corecast.msgpack")
}

/// A workload's JSON text as MessagePack.
pub fn from_json(text: &[u8]) -> Result<Vec<u8>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("bench sent non-JSON: {e}"))?;
    rmp_serde::to_vec(&value).map_err(|e| format!("msgpack encode: {e}"))
}

/// A server's MessagePack message as JSON text in `out` (cleared first).
pub fn to_json(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let value = rmpv::decode::read_value(&mut &bytes[..])
        .map_err(|e| format!("protocol: not MessagePack: {e}"))?;
    out.clear();
    write_json(&value, out);
    Ok(())
}

fn write_json(v: &Value, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(n) => {
            let _ = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => write!(out, "{u}"),
                (None, Some(i)) => write!(out, "{i}"),
                _ => write!(out, "null"),
            };
        }
        Value::F32(f) => {
            let _ = serde_json::to_writer(&mut *out, &f64::from(*f));
        }
        Value::F64(f) => {
            let _ = serde_json::to_writer(&mut *out, f);
        }
        Value::String(s) => {
            let _ = serde_json::to_writer(&mut *out, s.as_str().unwrap_or_default());
        }
        Value::Binary(_) | Value::Ext(..) => out.extend_from_slice(b"null"),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(item, out);
            }
            out.push(b']');
        }
        Value::Map(entries) => {
            out.push(b'{');
            for (i, (k, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let key = k.as_str().unwrap_or_default();
                let _ = serde_json::to_writer(&mut *out, key);
                out.push(b':');
                write_json(item, out);
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_keep_values_order_and_number_types() {
        let text =
            br#"{"type":"publish","channel":"c","data":{"p":1,"f":1.5,"x":[-1,null,true,"q\""]}}"#;
        let packed = from_json(text).unwrap();
        let mut back = Vec::new();
        to_json(&packed, &mut back).unwrap();
        let (a, b): (serde_json::Value, serde_json::Value) = (
            serde_json::from_slice(text).unwrap(),
            serde_json::from_slice(&back).unwrap(),
        );
        assert_eq!(a, b);
        // The server's own field order is kept (what fan-out matches on).
        let server = Value::Map(vec![
            (Value::from("type"), Value::from("message")),
            (Value::from("n"), Value::from(-3)),
            (Value::from("f"), Value::F64(2.0)),
        ]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &server).unwrap();
        to_json(&bytes, &mut back).unwrap();
        assert_eq!(back, br#"{"type":"message","n":-3,"f":2.0}"#);
        assert!(agreed(
            b"HTTP/1.1 101 x\r\nSec-WebSocket-Protocol: corecast.msgpack\r\n\r\n"
        ));
        assert!(!agreed(b"HTTP/1.1 101 x\r\n\r\n"));
    }
}
