//! The command line: `mcexec [<os index>] [options] <program> [args...]`.
//!
//! Parsed by hand rather than with clap: McKernel's syntax has an optional
//! leading numeric operand, `-h` means `--extend-heap-by` (not help), and
//! option parsing must stop at the program so that its own options
//! (`mcexec ls -l`) pass through untouched.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// OS instance index (`mcos<N>`).
    pub os_index: u32,
    /// `-n`: processes per node (validated; CPU partitioning comes with MPI).
    pub procs_per_node: Option<u32>,
    /// `-t`: most LWK threads of the process (thread slots and proxy threads).
    pub threads: Option<u32>,
    /// `-h/--extend-heap-by`: heap extension step in bytes.
    pub extend_heap_by: Option<u64>,
    /// `-s/--stack-premap`: premapped stack bytes and optional maximum.
    pub stack_premap: Option<u64>,
    pub stack_max: Option<u64>,
    /// `--enable-uti` (or `MCEXEC_ENABLE_UTI=1`): utility threads run on
    /// Linux CPUs inside mcexec (docs/uti.md).
    pub enable_uti: bool,
    /// The program as given and its arguments (argv[0] is `program`).
    pub program: OsString,
    pub args: Vec<OsString>,
}

/// Outcome of parsing.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Options),
    /// `--help`: usage on stdout, exit 0.
    Help,
}

/// A usage error: the message is printed with the usage, exit status 1.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub const USAGE: &str = "\
Usage: mcexec [<os index>] [options] <program> [args...]

Runs <program> on the lightweight kernel of OS instance <os index> (default 0).

Options:
  -n <processes-per-node>       number of mcexec processes started on this node
                                (e.g. by mpirun); at least 1
  -t <threads>                  most threads the program may create (default:
                                number of LWK CPUs, at least 4)
  -h, --extend-heap-by=<size>   extend the heap in steps of <size> (K, M, G suffixes)
  -s, --stack-premap=<size>[,<max>]
                                premap <size> bytes of stack; <max> is the stack limit
      --enable-uti              run utility threads (uti_pthread_create) on Linux
                                CPUs inside mcexec (also MCEXEC_ENABLE_UTI=1)
      --help                    print this help
";

/// Largest -t accepted.
pub const MAX_THREADS: u32 = 1024;

pub fn parse(argv: &[OsString]) -> Result<Parsed, UsageError> {
    let mut opts = Options {
        os_index: 0,
        procs_per_node: None,
        threads: None,
        extend_heap_by: None,
        stack_premap: None,
        stack_max: None,
        enable_uti: std::env::var_os("MCEXEC_ENABLE_UTI").is_some_and(|v| v == "1"),
        program: OsString::new(),
        args: Vec::new(),
    };
    let mut i = 0;
    // Optional leading OS index: a purely numeric first operand.
    if let Some(first) = argv.first() {
        let b = first.as_bytes();
        if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
            opts.os_index = first
                .to_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| UsageError(format!("invalid OS index '{}'", first.to_string_lossy())))?;
            i = 1;
        }
    }
    while i < argv.len() {
        let arg = argv[i].to_str().map(str::to_owned);
        let Some(arg) = arg else { break };
        if arg == "--" {
            i += 1;
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            break;
        }
        // Split "--long=value" and "-xVALUE" forms.
        let (name, inline): (&str, Option<String>) = if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            }
        } else {
            let (n, rest) = arg[1..].split_at(arg[1..].chars().next().map_or(0, char::len_utf8));
            (n, (!rest.is_empty()).then(|| rest.to_string()))
        };
        let long = arg.starts_with("--");
        let canonical = match (long, name) {
            (false, "n") => "n",
            (false, "t") => "t",
            (false, "h") | (true, "extend-heap-by") => "h",
            (false, "s") | (true, "stack-premap") => "s",
            (true, "enable-uti") => {
                if inline.is_some() {
                    return Err(UsageError("option '--enable-uti' takes no value".into()));
                }
                opts.enable_uti = true;
                i += 1;
                continue;
            }
            (true, "help") => {
                if inline.is_some() {
                    return Err(UsageError("option '--help' takes no value".into()));
                }
                return Ok(Parsed::Help);
            }
            _ => return Err(UsageError(format!("unknown option '{arg}'"))),
        };
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                argv.get(i)
                    .and_then(|v| v.to_str())
                    .map(str::to_owned)
                    .ok_or_else(|| UsageError(format!("option '{arg}' needs a value")))?
            }
        };
        match canonical {
            "n" => opts.procs_per_node = Some(parse_count("-n", &value, u32::MAX)?),
            "t" => opts.threads = Some(parse_count("-t", &value, MAX_THREADS)?),
            "h" => opts.extend_heap_by = Some(parse_size("--extend-heap-by", &value)?),
            "s" => {
                let (premap, max) = match value.split_once(',') {
                    Some((p, m)) => (p, Some(m)),
                    None => (value.as_str(), None),
                };
                let premap = parse_size("--stack-premap", premap)?;
                let max = max.map(|m| parse_size("--stack-premap (max)", m)).transpose()?;
                if let Some(m) = max {
                    if m < premap {
                        return Err(UsageError(format!(
                            "--stack-premap: maximum {m} is smaller than the premap size {premap}"
                        )));
                    }
                }
                opts.stack_premap = Some(premap);
                opts.stack_max = max;
            }
            _ => unreachable!(),
        }
        i += 1;
    }
    let Some(program) = argv.get(i) else {
        return Err(UsageError("no program given".into()));
    };
    opts.program = program.clone();
    opts.args = argv[i + 1..].to_vec();
    Ok(Parsed::Run(opts))
}

/// A positive integer no larger than `max`.
fn parse_count(opt: &str, v: &str, max: u32) -> Result<u32, UsageError> {
    match v.parse::<u64>() {
        Ok(n) if n >= 1 && n <= max as u64 => Ok(n as u32),
        _ => Err(UsageError(format!(
            "{opt}: invalid value '{v}': expected an integer from 1 to {max}"
        ))),
    }
}

/// `<digits>[K|M|G|T]` (case-insensitive, powers of 1024), non-zero.
pub fn parse_size(opt: &str, v: &str) -> Result<u64, UsageError> {
    let bad = || UsageError(format!("{opt}: invalid size '{v}': expected <number>[K|M|G|T], e.g. 2M"));
    let (digits, shift) = match v.as_bytes().last().map(u8::to_ascii_uppercase) {
        Some(b'K') => (&v[..v.len() - 1], 10),
        Some(b'M') => (&v[..v.len() - 1], 20),
        Some(b'G') => (&v[..v.len() - 1], 30),
        Some(b'T') => (&v[..v.len() - 1], 40),
        _ => (v, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let bytes = n.checked_mul(1u64 << shift).ok_or_else(bad)?;
    if bytes == 0 {
        return Err(UsageError(format!("{opt}: size must not be zero")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, UsageError> {
        parse(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    fn run(args: &[&str]) -> Options {
        match p(args).unwrap() {
            Parsed::Run(o) => o,
            Parsed::Help => panic!("help"),
        }
    }

    #[test]
    fn program_and_its_options_pass_through() {
        let o = run(&["ls", "-l", "-h", "/usr"]);
        assert_eq!(o.os_index, 0);
        assert_eq!(o.program, "ls");
        assert_eq!(o.args, vec!["-l", "-h", "/usr"]);
    }

    #[test]
    fn leading_os_index_and_options() {
        let o = run(&["1", "-n", "4", "-t", "8", "-h", "2M", "-s", "4M,64M", "./a.out", "x"]);
        assert_eq!(o.os_index, 1);
        assert_eq!(o.procs_per_node, Some(4));
        assert_eq!(o.threads, Some(8));
        assert_eq!(o.extend_heap_by, Some(2 << 20));
        assert_eq!((o.stack_premap, o.stack_max), (Some(4 << 20), Some(64 << 20)));
        assert_eq!(o.program, "./a.out");
        assert_eq!(o.args, vec!["x"]);
    }

    #[test]
    fn long_and_attached_forms() {
        let o = run(&["--extend-heap-by=1g", "--stack-premap=8M", "-n2", "prog"]);
        assert_eq!(o.extend_heap_by, Some(1 << 30));
        assert_eq!(o.stack_premap, Some(8 << 20));
        assert_eq!(o.stack_max, None);
        assert_eq!(o.procs_per_node, Some(2));
        let o = run(&["--", "-weird-name"]);
        assert_eq!(o.program, "-weird-name");
        let o = run(&["--enable-uti", "-n", "1", "prog", "--enable-uti"]);
        assert!(o.enable_uti);
        assert_eq!(o.args, vec!["--enable-uti"]);
        assert_eq!(p(&["--enable-uti=1", "prog"]), Err(UsageError("option '--enable-uti' takes no value".into())));
    }

    #[test]
    fn bad_input_is_named() {
        for (args, needle) in [
            (&["-x", "prog"][..], "unknown option '-x'"),
            (&["--bogus", "prog"], "unknown option '--bogus'"),
            (&["-n", "0", "prog"], "-n: invalid value '0'"),
            (&["-n", "abc", "prog"], "-n: invalid value 'abc'"),
            (&["-t", "-3", "prog"], "-t: invalid value '-3'"),
            (&["-h", "12Q", "prog"], "invalid size '12Q'"),
            (&["-s", "8M,1M", "prog"], "smaller than the premap"),
            (&["-n"], "needs a value"),
            (&[], "no program"),
            (&["-n", "2"], "no program"),
        ] {
            let e = p(args).unwrap_err().0;
            assert!(e.contains(needle), "{args:?}: {e}");
        }
        assert_eq!(p(&["--help"]).unwrap(), Parsed::Help);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("x", "4096").unwrap(), 4096);
        assert_eq!(parse_size("x", "4k").unwrap(), 4096);
        assert_eq!(parse_size("x", "2T").unwrap(), 2 << 40);
        assert!(parse_size("x", "0").is_err());
        assert!(parse_size("x", "M").is_err());
        assert!(parse_size("x", "99999999999999999999").is_err());
        assert!(parse_size("x", "20000000T").is_err());
    }
}
