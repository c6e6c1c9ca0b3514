//! Fuzz harness of the control protocol (issue 20, item 5): whatever bytes
//! a local user writes to `mcd0`/`mcosN`, the framing ([`super::wire`]) and
//! the decoder ([`super::decode_request`]) give a request or an error, never
//! a panic; whatever ihkd replies, a client decodes it or reports an error.
//! Inputs: any text; valid request lines with random edits; JSON objects
//! naming every request with fields of random JSON values; random byte
//! streams cut into random writes on a socket pair.

use std::io::Write;
use std::os::unix::net::UnixStream;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::wire::Receiver;
use super::{decode_request, MemConfKey, Request, RequestEnvelope, Response, PROTOCOL_VERSION};
use crate::list::{IkcMap, MemChunk, MemList};

/// Every request name ihkd knows (`Request`'s `op` tag), plus a stranger.
const OPS: &[&str] = &[
    "reserve_cpu", "release_cpu", "query_cpu", "reserve_mem", "release_mem", "query_mem",
    "create_os", "destroy_os", "get_os_instances", "set_owner", "daemon_info", "quit",
    "reserve_mem_conf", "os_assign_cpu", "os_release_cpu", "os_query_cpu", "os_assign_mem",
    "os_release_mem", "os_query_mem", "os_set_ikc_map", "os_get_ikc_map", "os_load", "os_kargs",
    "os_boot", "os_shutdown", "os_get_status", "os_kmsg", "os_clear_kmsg", "os_query_free_mem",
    "os_get_eventfd", "os_freeze", "os_thaw", "os_get_rusage", "os_info", "os_dump", "os_trace",
    "os_watch", "os_report_event", "os_attach", "os_share_window", "no_such_op",
];

/// Every field name a request carries.
const FIELDS: &[&str] = &[
    "cpus", "mem", "map", "os", "uid", "gid", "key", "value", "name", "kargs", "timeout_ms",
    "kind", "level", "interactive", "kmsg_from", "boot", "event", "local_rank", "per_node", "gpa",
    "len", "offset", "writable", "shmid", "size", "numa", "Bytes",
];

/// Valid request lines to edit.
fn samples() -> Vec<String> {
    let reqs = vec![
        Request::ReserveCpu { cpus: vec![1, 2] },
        Request::ReserveMem { mem: MemList(vec![MemChunk::bytes(512 << 20, 0)]) },
        Request::OsSetIkcMap { map: IkcMap(vec![(1, 0), (2, 0)]) },
        Request::OsBoot { timeout_ms: 5000 },
        Request::ReserveMemConf { key: MemConfKey::Timeout, value: 30 },
        Request::OsAttach { local_rank: Some(0), per_node: Some(2) },
        Request::OsShareWindow { gpa: 1 << 40, len: 4096, offset: 0, writable: true, shmid: Some(3) },
        Request::OsWatch { kmsg_from: Some(7) },
        Request::OsKargs { kargs: "hidos ksyslogd=0".into() },
        Request::QueryCpu,
    ];
    reqs.into_iter()
        .map(|req| serde_json::to_string(&RequestEnvelope { v: PROTOCOL_VERSION, req }).unwrap())
        .collect()
}

/// A valid line with up to 8 characters replaced, inserted or removed.
fn edited() -> impl Strategy<Value = String> {
    let edit = (any::<prop::sample::Index>(), 0u8..3, prop::sample::select(
        "{}[]\":,0123456789-.eE nultrfa\\\u{0}\u{1f}\u{fffd}".chars().collect::<Vec<_>>(),
    ));
    (prop::sample::select(samples()), prop::collection::vec(edit, 1..8)).prop_map(|(line, edits)| {
        let mut c: Vec<char> = line.chars().collect();
        for (at, kind, ch) in edits {
            let i = at.index(c.len() + 1);
            match kind {
                0 if i < c.len() => c[i] = ch,
                1 if i < c.len() => {
                    c.remove(i);
                }
                _ => c.insert(i, ch),
            }
        }
        c.into_iter().collect()
    })
}

/// A JSON value of any shape, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(vec![0u64, 1, 4 << 20, u32::MAX as u64, u64::MAX]).prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
        prop::sample::select(vec!["Memory", "Status", "Panic", "Timeout", "all", "ALL"]).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..4).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// `{"v":..,"req":{"op":<a request>, <fields>}}` with random values.
fn shaped() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just(json!(PROTOCOL_VERSION)), json_value()],
        prop::sample::select(OPS),
        prop::collection::vec((prop::sample::select(FIELDS), json_value()), 0..4),
    )
        .prop_map(|(v, op, fields)| {
            let mut req = serde_json::Map::new();
            req.insert("op".into(), json!(op));
            for (k, val) in fields {
                req.insert(k.to_string(), val);
            }
            json!({ "v": v, "req": Value::Object(req) }).to_string()
        })
}

fn check_request(line: &str) {
    if let Ok(req) = decode_request(line) {
        let again = serde_json::to_string(&RequestEnvelope { v: PROTOCOL_VERSION, req: req.clone() }).unwrap();
        assert_eq!(decode_request(&again).unwrap(), req, "{line}");
        let _ = (req.name(), req.is_device_request(), req.is_privileged());
    }
}

proptest! {
    #![proptest_config(mck_tests::fuzz::config(2000))]

    #[test]
    fn requests_of_any_text(line in any::<String>()) {
        check_request(&line);
    }

    #[test]
    fn requests_edited(line in edited()) {
        check_request(&line);
    }

    #[test]
    fn requests_of_any_shape(line in shaped()) {
        check_request(&line);
    }

    #[test]
    fn replies_of_any_text(line in prop_oneof![any::<String>(), edited(), shaped()]) {
        let _ = serde_json::from_str::<Response>(&line);
    }
}

proptest! {
    #![proptest_config(mck_tests::fuzz::config(500))]

    /// The framing: random bytes in random writes; every line that comes
    /// out is one the sender wrote, in order, and a non-UTF-8 line is an
    /// error, never a panic.
    #[test]
    fn framing_of_any_bytes(
        bytes in prop::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..2048),
        cuts in prop::collection::vec(1usize..300, 1..10),
    ) {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut rest = &bytes[..];
        for n in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let k = (*n).min(rest.len());
            a.write_all(&rest[..k]).unwrap();
            rest = &rest[k..];
        }
        drop(a);
        let mut want = bytes.split(|&c| c == b'\n').collect::<Vec<_>>();
        let unterminated = want.pop().unwrap();
        let mut rx = Receiver::new();
        for line in want {
            match rx.recv(&b) {
                Ok(Some((got, fds))) => {
                    prop_assert_eq!(got.as_bytes(), line);
                    prop_assert!(fds.is_empty());
                }
                Ok(None) => prop_assert!(false, "stream ended early"),
                Err(_) => {
                    prop_assert!(std::str::from_utf8(line).is_err());
                    return Ok(());
                }
            }
        }
        match rx.recv(&b) {
            Ok(None) => prop_assert!(unterminated.is_empty()),
            Err(_) => prop_assert!(!unterminated.is_empty()),
            Ok(Some(_)) => prop_assert!(false, "a line nobody wrote"),
        }
    }
}
