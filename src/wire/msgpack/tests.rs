//! Unit tests of the MessagePack transcoders, through the public API.

use super::*;
use rmpv::Value;

fn mp(json: &str) -> Result<Value, Error> {
    let mut out = Vec::new();
    from_json(json.as_bytes(), &mut out)?;
    let mut rd = &out[..];
    let v = rmpv::decode::read_value(&mut rd).expect("valid MessagePack");
    assert!(rd.is_empty(), "one value exactly");
    Ok(v)
}

fn js(v: &Value) -> Result<String, Error> {
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, v).unwrap();
    let mut out = Vec::new();
    to_json(&bytes, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

#[test]
fn json_becomes_the_same_msgpack_value() {
    assert_eq!(
        mp(
            r#" {"type":"message","n":[1,-1,300,-300,18446744073709551615,-9223372036854775808],"f":[1.5,1.0,1e2,-0,-0.0],"b":[true,false,null],"e":{},"a":[]} "#
        ),
        Ok(map(vec![
            ("type", Value::from("message")),
            (
                "n",
                Value::Array(vec![
                    Value::from(1),
                    Value::from(-1),
                    Value::from(300),
                    Value::from(-300),
                    Value::from(u64::MAX),
                    Value::from(i64::MIN),
                ])
            ),
            (
                "f",
                Value::Array(vec![
                    Value::F64(1.5),
                    Value::F64(1.0),
                    Value::F64(100.0),
                    Value::F64(-0.0),
                    Value::F64(-0.0),
                ])
            ),
            (
                "b",
                Value::Array(vec![
                    Value::Boolean(true),
                    Value::Boolean(false),
                    Value::Nil
                ])
            ),
            ("e", Value::Map(vec![])),
            ("a", Value::Array(vec![])),
        ]))
    );
}

#[test]
fn integers_take_the_smallest_msgpack_form() {
    let mut out = Vec::new();
    from_json(b"[0,127,128,-32,-33]", &mut out).unwrap();
    assert_eq!(out, [0x95, 0x00, 0x7f, 0xcc, 0x80, 0xe0, 0xd0, 0xdf]);
}

#[test]
fn json_string_escapes_are_decoded() {
    assert_eq!(
        mp(r#""a\"b\\c\/\b\f\n\r\t\u00e9\ud83d\ude00 é""#),
        Ok(Value::from("a\"b\\c/\u{8}\u{c}\n\r\t\u{e9}\u{1f600} é"))
    );
}

#[test]
fn json_without_an_exact_msgpack_form_is_refused() {
    let no = |what| Err(Error::Unrepresentable(what));
    assert_eq!(mp("18446744073709551616"), no(Unrepresentable::BigInteger));
    assert_eq!(mp("-9223372036854775809"), no(Unrepresentable::BigInteger));
    assert_eq!(mp("[1e400]"), no(Unrepresentable::HugeNumber));
    assert_eq!(mp(r#"{"a":"\ud800"}"#), no(Unrepresentable::LoneSurrogate));
    assert_eq!(mp(r#""\udc00\ud800""#), no(Unrepresentable::LoneSurrogate));
    assert_eq!(mp(r#""\ud800x""#), no(Unrepresentable::LoneSurrogate));
    assert_eq!(
        check_json(br#"{"x":[1,{"y":123456789012345678901234567890}]}"#),
        Err(Error::Unrepresentable(Unrepresentable::BigInteger))
    );
    assert_eq!(check_json(br#"{"x":[1.5e300,"\u0041"]}"#), Ok(()));
    // Tiny numbers are the nearest double (0), as any JSON parser reads them.
    assert_eq!(mp("1e-400"), Ok(Value::F64(0.0)));
}

#[test]
fn broken_json_is_an_error_not_a_panic() {
    for bad in [
        "",
        "[",
        "]",
        "{\"a\"}",
        "\"abc",
        "\"a\\",
        "tru",
        "-",
        "[1]]",
        "1 2",
        "\"\\u12\"",
        "\"\\x\"",
        "+1",
        "@",
    ] {
        assert!(
            matches!(mp(bad), Err(Error::Malformed(_))),
            "{bad:?}: {:?}",
            mp(bad)
        );
    }
    assert!(from_json(&[b'"', 0xff, b'"'], &mut Vec::new()).is_err());
}

#[test]
fn msgpack_becomes_the_same_json_value() {
    let v = map(vec![
        ("type", Value::from("publish")),
        ("id", Value::from(7)),
        (
            "data",
            Value::Array(vec![
                Value::from(u64::MAX),
                Value::from(i64::MIN),
                Value::from(-1),
                Value::F64(0.1),
                Value::F64(1.0),
                Value::F32(0.5),
                Value::from("q\"\\\u{1}é"),
                Value::Nil,
                Value::Boolean(true),
                map(vec![("k", Value::Array(vec![]))]),
            ]),
        ),
    ]);
    assert_eq!(
        js(&v).unwrap(),
        r#"{"type":"publish","id":7,"data":[18446744073709551615,-9223372036854775808,-1,0.1,1.0,0.5,"q\"\\\u0001é",null,true,{"k":[]}]}"#
    );
}

#[test]
fn json_to_msgpack_and_back_is_the_identity_on_server_text() {
    let text = r#"{"type":"message","channel":"a\"b","data":{"x":[1,-2,3.25,"é",null,true,{}],"y":""},"offset":18446744073709551615}"#;
    let mut packed = Vec::new();
    from_json(text.as_bytes(), &mut packed).unwrap();
    let mut back = Vec::new();
    to_json(&packed, &mut back).unwrap();
    assert_eq!(String::from_utf8(back).unwrap(), text);
}

#[test]
fn msgpack_without_a_json_form_is_refused() {
    let no = |what| Err(Error::Unrepresentable(what));
    assert_eq!(js(&Value::Binary(vec![1, 2])), no(Unrepresentable::Binary));
    assert_eq!(
        js(&Value::Ext(-1, vec![0; 4])),
        no(Unrepresentable::Extension)
    );
    assert_eq!(
        js(&Value::Ext(5, vec![0; 3])),
        no(Unrepresentable::Extension)
    );
    assert_eq!(js(&Value::F64(f64::NAN)), no(Unrepresentable::NonFinite));
    assert_eq!(
        js(&Value::F32(f32::INFINITY)),
        no(Unrepresentable::NonFinite)
    );
    let int_key = Value::Map(vec![(Value::from(1), Value::from(2))]);
    assert_eq!(js(&int_key), no(Unrepresentable::NonStringKey));
}

#[test]
fn lossy_transcoding_keeps_the_rest_readable() {
    let v = map(vec![
        ("type", Value::from("publish")),
        ("id", Value::from("x")),
        (
            "data",
            Value::Map(vec![
                (
                    Value::Array(vec![Value::from(1), Value::Binary(vec![])]),
                    Value::from(1),
                ),
                (Value::from(2), Value::Binary(vec![9])),
                (Value::from("ok"), Value::Ext(1, vec![1])),
            ]),
        ),
    ]);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &v).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        to_json_lossy(&bytes, &mut out),
        Ok(Some(Unrepresentable::NonStringKey))
    );
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        r#"{"type":"publish","id":"x","data":{"":1,"":null,"ok":null}}"#
    );
}

#[test]
fn malformed_msgpack_is_an_error_not_a_panic() {
    let cases: &[&[u8]] = &[
        &[],
        &[0xc1],
        &[0x92, 0x01],                   // array of 2, one element
        &[0xdd, 0xff, 0xff, 0xff, 0xff], // 4 billion elements claimed, none there
        &[0xdf, 0xff, 0xff, 0xff, 0xff],
        &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
        &[0xa2, 0xff, 0xfe], // not UTF-8
        &[0x01, 0x02],       // trailing bytes
        &[0xc6, 0xff, 0xff, 0xff, 0xff],
        &[0xcb, 0x00],
    ];
    for bad in cases {
        let mut out = Vec::new();
        assert!(
            matches!(to_json(bad, &mut out), Err(Error::Malformed(_))),
            "{bad:x?}"
        );
        assert!(out.is_empty());
    }
}

#[test]
fn nesting_is_bounded() {
    let nested = |depth: usize| {
        let mut bytes = vec![0x91; depth];
        bytes.push(0xc0);
        bytes
    };
    let mut out = Vec::new();
    assert_eq!(to_json(&nested(MAX_DEPTH), &mut out), Ok(()));
    assert_eq!(out.len(), 2 * MAX_DEPTH + 4);
    assert_eq!(
        to_json(&nested(MAX_DEPTH + 1), &mut Vec::new()),
        Err(Error::Malformed("nested too deep"))
    );
    // JSON from the server has no depth limit (no recursion either).
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut packed = Vec::new();
    from_json(deep.as_bytes(), &mut packed).unwrap();
    assert_eq!(packed.len(), 100_000);
}
