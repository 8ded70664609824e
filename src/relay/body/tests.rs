use serde_json::json;

use super::*;

fn oracle(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Map<String, Value>>(bytes).is_ok()
}

fn accepts(bytes: &[u8]) -> bool {
    JsonBody::parse(Bytes::copy_from_slice(bytes)).is_ok()
}

/// The scan accepts exactly the bodies serde_json reads as an object.
#[test]
fn accepts_what_serde_json_accepts() {
    let cases: &[&[u8]] = &[
        br#"{}"#,
        br#" { "a" : 1 } "#,
        br#"{"a":[1,-2.5e3,0,true,false,null,"x",{"b":{}},[]]}"#,
        br#"{"s":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}"#,
        br#"{"lone":"\ud83d"}"#,
        br#"{"trail":"\ude00"}"#,
        br#"{"bad":"\x"}"#,
        br#"{"short":"\u12"}"#,
        "{\"ctrl\":\"a\u{1}b\"}".as_bytes(),
        "{\"tab\":\"a\tb\"}".as_bytes(),
        b"{\"utf8\":\"\xff\"}",
        br#"{"n":01}"#,
        br#"{"n":1.}"#,
        br#"{"n":.5}"#,
        br#"{"n":-}"#,
        br#"{"n":1e}"#,
        br#"{"n":1e400}"#,
        br#"{"n":123456789012345678901234567890}"#,
        br#"{"a":1,}"#,
        br#"{"a":1 "b":2}"#,
        br#"{"a" 1}"#,
        br#"{a:1}"#,
        br#"[1]"#,
        br#""x""#,
        br#"{"a":1}x"#,
        br#"{"a":1}{"#,
        br#"{"a":[1,]}"#,
        br#"{"a":[1 2]}"#,
        br#"{"a":{"b"}}"#,
        br#"{"a":tru}"#,
        br#"{"a":nul"#,
        br#"{"a":"#,
        b"",
        br#"{"a":"x"#,
    ];
    for case in cases {
        assert_eq!(
            accepts(case),
            oracle(case),
            "{:?}",
            String::from_utf8_lossy(case)
        );
    }
}

/// Random edits of valid bodies are judged as serde_json judges them.
#[test]
fn agrees_with_serde_json_on_mutations() {
    let seeds: [&[u8]; 3] = [
        br#"{"a":1,"b":[true,false,null,"x\u00e9\ud83d\ude00",{"c":-1.5e3}],"d":"\"\\\/\b\f\n\r\t"}"#,
        br#"{}"#,
        br#" { "k" : [ ] , "l":{} } "#,
    ];
    let alphabet = b"{}[]\",:\\ u0123456789abcdefEtrnl-+.\x01\xff\xc3\xa9ed8dc";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..50_000 {
        let mut text = seeds[(next() % 3) as usize].to_vec();
        for _ in 0..=next() % 4 {
            let at = (next() % (text.len() as u64 + 1)) as usize;
            let byte = alphabet[(next() % alphabet.len() as u64) as usize];
            match next() % 3 {
                0 => text.insert(at, byte),
                1 if at < text.len() => {
                    text.remove(at);
                }
                _ if at < text.len() => text[at] = byte,
                _ => {}
            }
        }
        assert_eq!(
            accepts(&text),
            oracle(&text),
            "{:?}",
            String::from_utf8_lossy(&text)
        );
    }
}

/// Nesting is refused exactly where serde_json stops, without recursion.
#[test]
fn nesting_stops_where_serde_json_stops() {
    for depth in [MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, 10_000] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let text = format!("{{\"x\":{}1{}}}", open.repeat(depth), close.repeat(depth));
            assert_eq!(accepts(text.as_bytes()), oracle(text.as_bytes()), "{depth}");
        }
    }
}

/// Members are found by key, the last of duplicates wins, escaped keys match by text.
#[test]
fn finds_members() {
    let body = JsonBody::parse(Bytes::from_static(
        br#"{"model":"a","mod\u0065l":"b","stream":true,"n":7,"o":{"x":1},"s":"t\u00e9"}"#,
    ))
    .unwrap();
    assert_eq!(body.str("model").as_deref(), Some("b"));
    assert!(body.is_true("stream"));
    assert_eq!(body.get::<u64>("n"), Some(7));
    assert_eq!(body.get::<u64>("o"), None);
    assert_eq!(body.raw("o"), Some(&br#"{"x":1}"#[..]));
    assert_eq!(body.str("s").as_deref(), Some("té"));
    assert_eq!(body.str("missing"), None);
    assert!(!body.is_true("n"));
}

/// Edits replace or add members and leave every other byte as sent.
#[test]
fn edits_splice_into_the_bytes() {
    let sent = br#"{ "messages" : [ 1, 2 ], "model":"a", "stream_options": 5 }"#;
    let body = JsonBody::parse(Bytes::from_static(sent)).unwrap();
    assert_eq!(body.with(&[]), Bytes::from_static(sent));
    let edits = [
        Edit {
            key: "model",
            value: json_string("b\"c"),
        },
        Edit {
            key: "stream_options",
            value: Bytes::from_static(br#"{"include_usage":true}"#),
        },
        Edit {
            key: "added",
            value: Bytes::from_static(b"1"),
        },
    ];
    let out = body.with(&edits);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"added":1, "messages" : [ 1, 2 ], "model":"b\"c", "stream_options": {"include_usage":true} }"#
    );
    let empty = JsonBody::parse(Bytes::from_static(b" {} ")).unwrap();
    let out = empty.with(&edits[2..]);
    assert_eq!(&out[..], b" {\"added\":1} ");
    assert_eq!(
        serde_json::from_slice::<Value>(&out).unwrap(),
        json!({"added": 1})
    );
}
