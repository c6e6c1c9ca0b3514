//! /proc/cpuinfo of the partition: Linux's blocks of the LWK's CPUs.

/// Keep the blocks of Linux's `/proc/cpuinfo` whose `processor` is one of
/// `cpus` (in that order) and number them 0, 1, ... as the LWK does; fields
/// that count CPUs of the package (`siblings`, `cpu cores`) are set to the
/// partition's count on that package.
pub fn filter_cpuinfo(text: &str, cpus: &[u32]) -> String {
    let blocks: Vec<&str> = text.split("\n\n").filter(|b| !b.trim().is_empty()).collect();
    let id_of = |b: &str| -> Option<u32> {
        b.lines().find(|l| l.starts_with("processor")).and_then(|l| l.split(':').nth(1)).and_then(|v| v.trim().parse().ok())
    };
    let field = |b: &str, name: &str| -> Option<String> {
        b.lines().find(|l| l.split(':').next().is_some_and(|k| k.trim() == name)).and_then(|l| l.split(':').nth(1)).map(|v| v.trim().to_string())
    };
    let chosen: Vec<&str> = cpus.iter().filter_map(|c| blocks.iter().find(|b| id_of(b) == Some(*c)).copied()).collect();
    let mut out = String::new();
    for (i, b) in chosen.iter().enumerate() {
        let pkg = field(b, "physical id");
        let on_pkg = chosen.iter().filter(|o| field(o, "physical id") == pkg).count();
        for line in b.lines() {
            let key = line.split(':').next().unwrap_or("").trim();
            match key {
                "processor" => out.push_str(&format!("processor\t: {i}")),
                "siblings" => out.push_str(&format!("siblings\t: {on_pkg}")),
                "cpu cores" => out.push_str(&format!("cpu cores\t: {on_pkg}")),
                _ => out.push_str(line),
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "processor\t: 0\nvendor_id\t: X\nphysical id\t: 0\nsiblings\t: 2\ncpu cores\t: 2\n\n\
processor\t: 1\nvendor_id\t: Y\nphysical id\t: 0\nsiblings\t: 2\ncpu cores\t: 2\n\n";

    #[test]
    fn keeps_the_partition_cpus_renumbered() {
        let out = filter_cpuinfo(TWO, &[1]);
        assert_eq!(out, "processor\t: 0\nvendor_id\t: Y\nphysical id\t: 0\nsiblings\t: 1\ncpu cores\t: 1\n\n");
        assert_eq!(filter_cpuinfo(TWO, &[1, 0]).matches("processor").count(), 2);
        assert_eq!(filter_cpuinfo(TWO, &[7]), "");
    }

    #[test]
    fn works_on_this_machine() {
        let text = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let out = filter_cpuinfo(&text, &[0]);
        assert_eq!(out.matches("\nprocessor").count() + out.starts_with("processor") as usize, 1);
    }
}
