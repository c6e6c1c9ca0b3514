//! Parsing what the benchmark programs print: "key value..." records on
//! stdout and one-number-per-line sample files.

use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;

/// The stdout of one benchmark program, split into records.
#[derive(Debug, Clone)]
pub struct Records {
    lines: Vec<Vec<String>>,
    program: String,
}

impl Records {
    pub fn new(program: &str, stdout: &str) -> Records {
        Records {
            program: program.to_string(),
            lines: stdout
                .lines()
                .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .filter(|l| !l.is_empty())
                .collect(),
        }
    }

    /// Every record whose first word is `key`, without the key.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a [String]> + 'a {
        self.lines
            .iter()
            .filter(move |l| l[0] == key)
            .map(|l| &l[1..])
    }

    /// The single value of the last record `key value`.
    pub fn value(&self, key: &str) -> Result<&str> {
        self.lines
            .iter()
            .rev()
            .find(|l| l[0] == key)
            .and_then(|l| l.get(1))
            .map(String::as_str)
            .ok_or_else(|| anyhow!("{}: no '{key}' line in its output", self.program))
    }

    pub fn f64(&self, key: &str) -> Result<f64> {
        let v = self.value(key)?;
        v.parse::<f64>()
            .map_err(|_| anyhow!("{}: '{key}' should be a number, got '{v}'", self.program))
    }

    pub fn has(&self, key: &str) -> bool {
        self.all(key).next().is_some()
    }
}

/// Reads a file of one non-negative number per line.
pub fn read_samples(path: &Path) -> Result<Vec<f64>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading samples from {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        match t.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => out.push(v),
            _ => bail!(
                "{}:{}: expected a non-negative number, got '{t}'",
                path.display(),
                i + 1
            ),
        }
    }
    if out.is_empty() {
        bail!("{}: no samples", path.display());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_lookup() {
        let r = Records::new(
            "x",
            "tsc_hz 2600000000\nrate copy 0 10.5\nrate copy 1 11\n\ndone\n",
        );
        assert_eq!(r.f64("tsc_hz").unwrap(), 2.6e9);
        assert_eq!(r.all("rate").count(), 2);
        assert!(r.has("done"));
        assert!(r
            .value("missing")
            .unwrap_err()
            .to_string()
            .contains("no 'missing' line"));
        assert!(Records::new("x", "n abc").f64("n").is_err());
    }

    #[test]
    fn samples_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.txt");
        std::fs::write(&p, "1\n2\n\n3\n").unwrap();
        assert_eq!(read_samples(&p).unwrap(), vec![1.0, 2.0, 3.0]);
        std::fs::write(&p, "1\n-2\n").unwrap();
        let e = read_samples(&p).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("'-2'"), "{e}");
        std::fs::write(&p, "").unwrap();
        assert!(read_samples(&p).is_err());
    }
}
