//! /sys/devices/system/{cpu,node}: the partition's CPUs and NUMA nodes.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{cpus, list, mask, View};

fn text(s: String) -> View {
    View::Content(s.into_bytes())
}

/// `rest`: the path after `/sys/devices/system/`.
pub fn lookup(rest: &str) -> View {
    match rest {
        "cpu" => return View::Dir(super::DirKind::Cpus),
        "node" => return View::Dir(super::DirKind::Nodes),
        _ => {}
    }
    let all: Vec<u32> = cpus().iter().map(|c| c.0).collect();
    if let Some(cpu) = rest.strip_prefix("cpu/") {
        return match cpu {
            "online" | "possible" | "present" => text(format!("{}\n", list(&all))),
            "offline" => text(String::from("\n")),
            "kernel_max" => text(format!("{}\n", all.len() - 1)),
            _ => match numbered(cpu, "cpu") {
                Some((n, tail)) => match cpus().iter().find(|c| c.0 == n) {
                    Some(c) => View::Redirect(format!("/sys/devices/system/cpu/cpu{}{}", c.1, tail)),
                    None => View::Missing,
                },
                None => View::Linux,
            },
        };
    }
    if let Some(node) = rest.strip_prefix("node/") {
        let bp = crate::boot_params::get();
        let nodes: Vec<u32> = (0..bp.numa_nodes().len() as u32).collect();
        return match node {
            "online" | "possible" | "has_memory" | "has_normal_memory" => text(format!("{}\n", list(&nodes))),
            "has_cpu" => {
                let mut with: Vec<u32> = cpus().iter().map(|c| c.2).collect();
                with.sort_unstable();
                with.dedup();
                text(format!("{}\n", list(&with)))
            }
            "has_high_memory" => text(String::from("\n")),
            _ => match numbered(node, "node") {
                Some((n, tail)) if (n as usize) < nodes.len() => node_file(n, tail, all.len() as u32),
                Some(_) => View::Missing,
                None => View::Linux,
            },
        };
    }
    View::Linux
}

/// "cpu12/topology/core_id" → (12, "/topology/core_id").
fn numbered<'a>(s: &'a str, prefix: &str) -> Option<(u32, &'a str)> {
    let r = s.strip_prefix(prefix)?;
    let digits = r.bytes().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let tail = &r[digits..];
    if !(tail.is_empty() || tail.starts_with('/')) {
        return None;
    }
    Some((r[..digits].parse().ok()?, tail))
}

fn node_file(n: u32, tail: &str, ncpus: u32) -> View {
    let on: Vec<u32> = cpus().iter().filter(|c| c.2 == n).map(|c| c.0).collect();
    match tail {
        "/cpulist" => text(format!("{}\n", list(&on))),
        "/cpumap" => text(format!("{}\n", mask(&on, ncpus))),
        "/meminfo" => {
            let (free, total) = crate::mm::frame::node_bytes(n);
            text(format!(
                "Node {n} MemTotal:       {:8} kB\nNode {n} MemFree:        {:8} kB\nNode {n} MemUsed:        {:8} kB\n",
                total / 1024,
                free / 1024,
                (total - free) / 1024
            ))
        }
        "/distance" => {
            let bp = crate::boot_params::get();
            let k = bp.numa_nodes().len();
            let d: Vec<String> = (0..k).map(|j| format!("{}", bp.numa_distance(n as usize, j).unwrap_or(0))).collect();
            text(format!("{}\n", d.join(" ")))
        }
        _ => {
            let linux = crate::boot_params::get().numa_nodes()[n as usize].linux_id;
            View::Redirect(format!("/sys/devices/system/node/node{linux}{tail}"))
        }
    }
}
