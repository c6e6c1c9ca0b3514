//! Decoding one request line as `ihkd` receives it: JSON, then the protocol
//! version, then the invariants the list parsers guarantee for lists typed
//! by a user (a client that builds its JSON by hand must not hand the
//! daemon a memory size of 1 byte, a CPU id of four billion or an LWK CPU
//! mapped twice). The line comes from any local user who can open the
//! socket, so nothing here may panic; `proto/fuzz.rs` feeds it random input.

use std::collections::HashSet;

use libc::{EINVAL, EPROTO};

use super::{Request, RequestEnvelope, PROTOCOL_VERSION};
use crate::error::IhkError;
use crate::list::{IkcMap, MemList, MemSize, MAX_CPU_ID, MEM_GRANULE};

/// The request of one line, or the error to send back.
pub fn decode_request(line: &str) -> Result<Request, IhkError> {
    let env = serde_json::from_str::<RequestEnvelope>(line)
        .map_err(|e| IhkError::new(EPROTO, format!("unreadable request: {e}")))?;
    if env.v != PROTOCOL_VERSION {
        return Err(IhkError::new(
            EPROTO,
            format!(
                "protocol version {} is not supported (ihkd speaks {PROTOCOL_VERSION})",
                env.v
            ),
        ));
    }
    check(&env.req).map_err(|why| IhkError::new(EINVAL, format!("{}: {why}", env.req.name())))?;
    Ok(env.req)
}

/// The list invariants of `req`.
fn check(req: &Request) -> Result<(), String> {
    use Request::*;
    match req {
        ReserveCpu { cpus } | ReleaseCpu { cpus } | OsAssignCpu { cpus } | OsReleaseCpu { cpus } => {
            check_cpus(cpus.iter().copied())
        }
        ReserveMem { mem } | ReleaseMem { mem } | OsAssignMem { mem } | OsReleaseMem { mem } => {
            check_mem(mem)
        }
        OsSetIkcMap { map } => check_ikc(map),
        _ => Ok(()),
    }
}

fn check_cpus(ids: impl Iterator<Item = u32>) -> Result<(), String> {
    let mut seen = HashSet::new();
    for id in ids {
        if id > MAX_CPU_ID {
            return Err(format!("CPU id {id} is larger than the largest CPU id, {MAX_CPU_ID}"));
        }
        if !seen.insert(id) {
            return Err(format!("CPU {id} is listed twice"));
        }
    }
    Ok(())
}

fn check_mem(mem: &MemList) -> Result<(), String> {
    for c in mem.chunks() {
        if let MemSize::Bytes(b) = c.size {
            if b == 0 || b % MEM_GRANULE != 0 {
                return Err(format!("memory size {b} is not a positive multiple of 4 MiB"));
            }
        }
    }
    Ok(())
}

fn check_ikc(map: &IkcMap) -> Result<(), String> {
    check_cpus(map.0.iter().map(|&(s, _)| s))?;
    match map.0.iter().find(|&&(_, d)| d > MAX_CPU_ID) {
        Some((_, d)) => Err(format!("Linux CPU {d} is larger than the largest CPU id, {MAX_CPU_ID}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_the_parsers_would() {
        let e = decode_request(r#"{"v":1,"req":{"op":"reserve_mem","mem":[{"size":{"Bytes":1},"numa":0}]}}"#);
        assert_eq!(e.unwrap_err().errno, EINVAL);
        let e = decode_request(r#"{"v":1,"req":{"op":"reserve_cpu","cpus":[1,1]}}"#);
        assert_eq!(e.unwrap_err().errno, EINVAL);
        let e = decode_request(r#"{"v":1,"req":{"op":"os_assign_cpu","cpus":[4294967295]}}"#);
        assert_eq!(e.unwrap_err().errno, EINVAL);
        let e = decode_request(r#"{"v":2,"req":{"op":"query_cpu"}}"#);
        assert_eq!(e.unwrap_err().errno, EPROTO);
        let e = decode_request("{");
        assert_eq!(e.unwrap_err().errno, EPROTO);
        assert_eq!(decode_request(r#"{"v":1,"req":{"op":"query_cpu"}}"#).unwrap(), Request::QueryCpu);
    }
}
