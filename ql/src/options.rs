//! The command line of ql_mpiexec_start / ql_mpiexec_finalize: mpiexec
//! options (Open MPI's and MPICH Hydra's spellings), an optional `mcexec`
//! with its options, the program and its arguments.
//!
//! Parsed by a table rather than clap: mpiexec options are single-dash long
//! names (`-machinefile`), some take two values (`-genv NAME VALUE`), and all
//! must be passed on to mpiexec verbatim; an option we do not know cannot be
//! skipped safely (we would not know whether it takes a value), so it is an
//! error naming the option.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// What an option means to quick launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// No value.
    Flag,
    /// One value, not interpreted.
    Value,
    /// Two values, not interpreted (`--mca key value`).
    TwoValues,
    /// Process count (`-n`, `-np`): part of the job key.
    Np,
    /// Host file: part of the job key.
    HostFile,
    /// Host list: part of the job key.
    Hosts,
    /// MPICH `-env`/`-genv NAME VALUE` (or `NAME=VALUE`).
    EnvSet,
    /// Open MPI `-x NAME[=VALUE]`.
    EnvExport,
    /// MPICH `-envlist`/`-genvlist a,b`: pass only these.
    EnvList,
    /// MPICH `-envnone`/`-genvnone`.
    EnvNone,
    /// MPICH `-envall`/`-genvall`.
    EnvAll,
    /// Working directory of the ranks.
    Wdir,
    /// Prints help: ours, not mpiexec's.
    Help,
    /// Would change the program per rank or read it from a file.
    Unsupported,
}

/// Option names without leading dashes (`-x`, `--x` and `--x=v` all match).
const OPTIONS: &[(&str, Kind)] = &[
    ("n", Kind::Np),
    ("np", Kind::Np),
    ("c", Kind::Np),
    ("hostfile", Kind::HostFile),
    ("machinefile", Kind::HostFile),
    ("f", Kind::HostFile),
    ("default-hostfile", Kind::HostFile),
    ("host", Kind::Hosts),
    ("hosts", Kind::Hosts),
    ("H", Kind::Hosts),
    ("machine", Kind::Hosts),
    ("machines", Kind::Hosts),
    ("machinelist", Kind::Hosts),
    ("hostlist", Kind::Hosts),
    ("env", Kind::EnvSet),
    ("genv", Kind::EnvSet),
    ("x", Kind::EnvExport),
    ("envlist", Kind::EnvList),
    ("genvlist", Kind::EnvList),
    ("envnone", Kind::EnvNone),
    ("genvnone", Kind::EnvNone),
    ("envall", Kind::EnvAll),
    ("genvall", Kind::EnvAll),
    ("wdir", Kind::Wdir),
    ("wd", Kind::Wdir),
    ("help", Kind::Help),
    ("h", Kind::Help),
    ("configfile", Kind::Unsupported),
    ("app", Kind::Unsupported),
    ("mca", Kind::TwoValues),
    ("gmca", Kind::TwoValues),
    // One value, passed through.
    ("ppn", Kind::Value),
    ("npernode", Kind::Value),
    ("npersocket", Kind::Value),
    ("map-by", Kind::Value),
    ("rank-by", Kind::Value),
    ("bind-to", Kind::Value),
    ("binding", Kind::Value),
    ("membind", Kind::Value),
    ("topolib", Kind::Value),
    ("rankfile", Kind::Value),
    ("cpus-per-proc", Kind::Value),
    ("cpus-per-rank", Kind::Value),
    ("cpu-set", Kind::Value),
    ("launcher", Kind::Value),
    ("launcher-exec", Kind::Value),
    ("bootstrap", Kind::Value),
    ("bootstrap-exec", Kind::Value),
    ("rmk", Kind::Value),
    ("demux", Kind::Value),
    ("iface", Kind::Value),
    ("prepend-pattern", Kind::Value),
    ("outfile-pattern", Kind::Value),
    ("errfile-pattern", Kind::Value),
    ("outfile", Kind::Value),
    ("errfile", Kind::Value),
    ("output-filename", Kind::Value),
    ("ckpoint-interval", Kind::Value),
    ("ckpoint-prefix", Kind::Value),
    ("ckpoint-num", Kind::Value),
    ("ckpointlib", Kind::Value),
    ("nameserver", Kind::Value),
    ("ompi-server", Kind::Value),
    ("order-nodes", Kind::Value),
    ("localhost", Kind::Value),
    ("usize", Kind::Value),
    ("gpus-per-proc", Kind::Value),
    ("prefix", Kind::Value),
    ("path", Kind::Value),
    ("tune", Kind::Value),
    ("am", Kind::Value),
    ("timeout", Kind::Value),
    ("report-pid", Kind::Value),
    ("report-uri", Kind::Value),
    ("stdin", Kind::Value),
    ("preload-files", Kind::Value),
    ("personality", Kind::Value),
    // Flags, passed through.
    ("version", Kind::Flag),
    ("V", Kind::Flag),
    ("verbose", Kind::Flag),
    ("v", Kind::Flag),
    ("q", Kind::Flag),
    ("quiet", Kind::Flag),
    ("info", Kind::Flag),
    ("debug", Kind::Flag),
    ("d", Kind::Flag),
    ("profile", Kind::Flag),
    ("prepend-rank", Kind::Flag),
    ("l", Kind::Flag),
    ("print-all-exitcodes", Kind::Flag),
    ("disable-auto-cleanup", Kind::Flag),
    ("dac", Kind::Flag),
    ("enable-auto-cleanup", Kind::Flag),
    ("disable-hostname-propagation", Kind::Flag),
    ("enable-hostname-propagation", Kind::Flag),
    ("enable-x", Kind::Flag),
    ("disable-x", Kind::Flag),
    ("skip-launch-node", Kind::Flag),
    ("oversubscribe", Kind::Flag),
    ("nooversubscribe", Kind::Flag),
    ("allow-run-as-root", Kind::Flag),
    ("tag-output", Kind::Flag),
    ("timestamp-output", Kind::Flag),
    ("merge-stderr-to-stdout", Kind::Flag),
    ("xml", Kind::Flag),
    ("report-bindings", Kind::Flag),
    ("display-map", Kind::Flag),
    ("display-devel-map", Kind::Flag),
    ("display-allocation", Kind::Flag),
    ("display-devel-allocation", Kind::Flag),
    ("nolocal", Kind::Flag),
    ("use-hwthread-cpus", Kind::Flag),
    ("bind-to-core", Kind::Flag),
    ("bind-to-socket", Kind::Flag),
    ("bynode", Kind::Flag),
    ("byslot", Kind::Flag),
    ("bycore", Kind::Flag),
    ("bysocket", Kind::Flag),
    ("noprefix", Kind::Flag),
    ("leave-session-attached", Kind::Flag),
    ("show-progress", Kind::Flag),
    ("enable-recovery", Kind::Flag),
    ("disable-recovery", Kind::Flag),
];

/// `mcexec` short options that take a value (`-n 4`, also `-n4`); long
/// options take one only as `--name=value`; `--` ends mcexec's options.
const MCEXEC_SHORT_WITH_VALUE: &[u8] = b"nctmhsu";

/// One change to the environment the ranks see, in command-line order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvEdit {
    /// NAME=VALUE.
    Set(OsString, OsString),
    /// Keep only these names (plus later `Set`s).
    Only(Vec<OsString>),
    /// Start from an empty environment.
    None,
    /// Start from the whole environment again.
    All,
}

/// A parsed command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Invocation {
    /// The mpiexec options, verbatim, in order.
    pub mpi_opts: Vec<OsString>,
    /// Process count as given (`-n`), if any.
    pub np: Option<String>,
    /// Host file as given, if any.
    pub hostfile: Option<PathBuf>,
    /// Host lists as given (`-host a,b`), joined by spaces.
    pub hosts: Option<String>,
    /// Environment changes for the ranks.
    pub env_edits: Vec<EnvEdit>,
    /// `-wdir`, if any.
    pub wdir: Option<PathBuf>,
    /// `mcexec` and its options, if the program is run through mcexec.
    pub mcexec: Vec<OsString>,
    /// The program as given.
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
}

/// Why a command line was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionError {
    #[error("unknown mpiexec option '{0}' (quick launch passes mpiexec options on and must know whether each takes a value)")]
    Unknown(String),
    #[error("option '{0}' needs {1} value(s)")]
    MissingValue(String, usize),
    #[error("option '{0}' is not supported by quick launch: the program must be given on the command line")]
    Unsupported(String),
    #[error("no program given: expected [mpiexec options] [mcexec [options]] <program> [args]")]
    NoProgram,
    #[error("':' (several programs in one job) is not supported by quick launch")]
    Mpmd,
    #[error("-n/-np value '{0}' is not a positive process count")]
    BadCount(String),
    #[error("help requested")]
    Help,
}

fn lookup(name: &str) -> Option<Kind> {
    OPTIONS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

/// Splits `-name`, `--name` and `--name=value` into the table name and an
/// inline value.
fn split_option(arg: &str) -> (&str, Option<&str>) {
    let body = arg.trim_start_matches('-');
    if arg.starts_with("--") {
        if let Some((n, v)) = body.split_once('=') {
            return (n, Some(v));
        }
    }
    (body, None)
}

impl Invocation {
    /// Parses `args` (without the command name).
    pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Self, OptionError> {
        let args: Vec<OsString> = args.into_iter().collect();
        let mut inv = Invocation::default();
        let mut i = 0;
        while i < args.len() {
            let raw = &args[i];
            let Some(text) = raw.to_str().filter(|t| t.starts_with('-') && t.len() > 1) else {
                break;
            };
            let (name, inline) = split_option(text);
            let kind = lookup(name).ok_or_else(|| OptionError::Unknown(text.to_string()))?;
            let want = match kind {
                Kind::Flag | Kind::EnvNone | Kind::EnvAll | Kind::Help | Kind::Unsupported => 0,
                Kind::TwoValues => 2,
                Kind::EnvSet => {
                    // NAME=VALUE in one word, or NAME VALUE in two.
                    match inline.or_else(|| args.get(i + 1).and_then(|a| a.to_str())) {
                        Some(v) if v.contains('=') => 1,
                        _ => 2,
                    }
                }
                _ => 1,
            };
            if kind == Kind::Help {
                return Err(OptionError::Help);
            }
            if kind == Kind::Unsupported {
                return Err(OptionError::Unsupported(text.to_string()));
            }
            let mut values: Vec<OsString> = Vec::new();
            inv.mpi_opts.push(raw.clone());
            if let Some(v) = inline {
                values.push(v.into());
            }
            while values.len() < want {
                i += 1;
                let v = args
                    .get(i)
                    .ok_or_else(|| OptionError::MissingValue(text.to_string(), want))?;
                inv.mpi_opts.push(v.clone());
                values.push(v.clone());
            }
            inv.apply(kind, values)?;
            i += 1;
        }
        let rest = &args[i..];
        if rest.iter().any(|a| a == ":") {
            return Err(OptionError::Mpmd);
        }
        let (mcexec, program_at) = split_mcexec(rest);
        inv.mcexec = mcexec;
        inv.program = rest
            .get(program_at)
            .cloned()
            .ok_or(OptionError::NoProgram)?;
        inv.args = rest[program_at + 1..].to_vec();
        Ok(inv)
    }

    fn apply(&mut self, kind: Kind, mut v: Vec<OsString>) -> Result<(), OptionError> {
        match kind {
            Kind::Np => {
                let n = v.remove(0).to_string_lossy().into_owned();
                if n.parse::<u32>().map_or(true, |c| c == 0) {
                    return Err(OptionError::BadCount(n));
                }
                self.np = Some(n);
            }
            Kind::HostFile => self.hostfile = Some(v.remove(0).into()),
            Kind::Hosts => {
                let h = v.remove(0).to_string_lossy().into_owned();
                self.hosts = Some(match self.hosts.take() {
                    Some(prev) => format!("{prev} {h}"),
                    None => h,
                });
            }
            Kind::EnvSet => {
                let edit = if v.len() == 1 {
                    let (k, val) = split_assignment(&v[0]);
                    EnvEdit::Set(k, val)
                } else {
                    EnvEdit::Set(v[0].clone(), v[1].clone())
                };
                self.env_edits.push(edit);
            }
            Kind::EnvExport => {
                // `-x NAME` exports the current value, which the ranks see
                // anyway; only `-x NAME=VALUE` changes anything.
                if v[0].as_bytes().contains(&b'=') {
                    let (k, val) = split_assignment(&v[0]);
                    self.env_edits.push(EnvEdit::Set(k, val));
                }
            }
            Kind::EnvList => {
                let names = v[0]
                    .as_bytes()
                    .split(|b| *b == b',')
                    .filter(|n| !n.is_empty())
                    .map(|n| OsStr::from_bytes(n).to_owned())
                    .collect();
                self.env_edits.push(EnvEdit::Only(names));
            }
            Kind::EnvNone => self.env_edits.push(EnvEdit::None),
            Kind::EnvAll => self.env_edits.push(EnvEdit::All),
            Kind::Wdir => self.wdir = Some(v.remove(0).into()),
            Kind::Flag | Kind::Value | Kind::TwoValues | Kind::Help | Kind::Unsupported => {}
        }
        Ok(())
    }

    /// The program's argv for a round: the program as given, then its
    /// arguments (what mpiexec gives the ranks as argv).
    pub fn round_argv(&self) -> Vec<OsString> {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().cloned())
            .collect()
    }

    /// The command that launches the job: `mpiexec <options> [mcexec ...]
    /// <program> <args>`, with `mpiexec` replaced by `launcher` (the
    /// QL_MPIEXEC words) and `mcexec` inserted if `extra_mcexec` is given and
    /// the command line has none.
    pub fn launch_command(
        &self,
        launcher: &[OsString],
        extra_mcexec: Option<&OsStr>,
    ) -> Vec<OsString> {
        let mut cmd: Vec<OsString> = launcher.to_vec();
        cmd.extend(self.mpi_opts.iter().cloned());
        if self.mcexec.is_empty() {
            if let Some(m) = extra_mcexec {
                cmd.push(m.to_owned());
            }
        } else {
            cmd.extend(self.mcexec.iter().cloned());
        }
        cmd.extend(self.round_argv());
        cmd
    }
}

fn split_assignment(s: &OsStr) -> (OsString, OsString) {
    let b = s.as_bytes();
    match b.iter().position(|c| *c == b'=') {
        Some(p) => (
            OsStr::from_bytes(&b[..p]).into(),
            OsStr::from_bytes(&b[p + 1..]).into(),
        ),
        None => (s.to_owned(), OsString::new()),
    }
}

/// If `rest` starts with mcexec (by base name), returns mcexec with its
/// options and the index of the real program.
fn split_mcexec(rest: &[OsString]) -> (Vec<OsString>, usize) {
    let is_mcexec = rest
        .first()
        .map(|p| p.as_bytes().rsplit(|b| *b == b'/').next() == Some(b"mcexec".as_slice()))
        .unwrap_or(false);
    if !is_mcexec {
        return (Vec::new(), 0);
    }
    let mut i = 1;
    while i < rest.len() {
        let a = rest[i].as_bytes();
        if a == b"--" {
            i += 1;
            break;
        }
        if a.len() < 2 || a[0] != b'-' {
            break;
        }
        if a[1] != b'-' && a.len() == 2 && MCEXEC_SHORT_WITH_VALUE.contains(&a[1]) {
            i += 1; // the value
        }
        i += 1;
    }
    // Everything before the program goes to mcexec, `--` included.
    (rest[..i.min(rest.len())].to_vec(), i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Invocation, OptionError> {
        Invocation::parse(s.split_whitespace().map(OsString::from))
    }

    #[test]
    fn guide_job_script_line() {
        let inv = parse("-n 100 -machinefile ./list1_3 p1.out a1").unwrap();
        assert_eq!(inv.np.as_deref(), Some("100"));
        assert_eq!(inv.hostfile, Some(PathBuf::from("./list1_3")));
        assert_eq!(inv.program, "p1.out");
        assert_eq!(inv.args, vec![OsString::from("a1")]);
        assert_eq!(inv.mpi_opts.len(), 4);
        assert!(inv.mcexec.is_empty());
    }

    #[test]
    fn finalize_line_without_count() {
        let inv = parse("-machinefile ./list2 p2.out a2").unwrap();
        assert_eq!(inv.np, None);
        assert_eq!(inv.program, "p2.out");
    }

    #[test]
    fn env_options_of_both_mpis() {
        let inv = parse("-genv A 1 -env B=2 -x C=3 -x D --genvlist=E,F -genvnone -genvall ./a.out")
            .unwrap();
        assert_eq!(
            inv.env_edits,
            vec![
                EnvEdit::Set("A".into(), "1".into()),
                EnvEdit::Set("B".into(), "2".into()),
                EnvEdit::Set("C".into(), "3".into()),
                EnvEdit::Only(vec!["E".into(), "F".into()]),
                EnvEdit::None,
                EnvEdit::All,
            ]
        );
        assert_eq!(inv.program, "./a.out");
    }

    #[test]
    fn double_dash_and_inline_values() {
        let inv = parse("--np 2 --hostfile=h --mca btl self --oversubscribe ./a.out x").unwrap();
        assert_eq!(inv.np.as_deref(), Some("2"));
        assert_eq!(inv.hostfile, Some(PathBuf::from("h")));
        assert_eq!(inv.program, "./a.out");
        assert_eq!(
            inv.mpi_opts,
            [
                "--np",
                "2",
                "--hostfile=h",
                "--mca",
                "btl",
                "self",
                "--oversubscribe"
            ]
            .map(OsString::from)
            .to_vec()
        );
    }

    #[test]
    fn mcexec_and_its_options() {
        let inv = parse("-n 2 mcexec -n 2 --enable-uti ./a.out r1").unwrap();
        assert_eq!(
            inv.mcexec,
            ["mcexec", "-n", "2", "--enable-uti"]
                .map(OsString::from)
                .to_vec()
        );
        assert_eq!(inv.program, "./a.out");
        assert_eq!(inv.args, vec![OsString::from("r1")]);
        let inv = parse("-n 2 /opt/mck/bin/mcexec -- -weird-name").unwrap();
        assert_eq!(inv.program, "-weird-name");
        assert_eq!(inv.mcexec.len(), 2);
        let cmd = inv.launch_command(&["mpiexec".into()], None);
        assert_eq!(
            cmd,
            [
                "mpiexec",
                "-n",
                "2",
                "/opt/mck/bin/mcexec",
                "--",
                "-weird-name"
            ]
            .map(OsString::from)
            .to_vec()
        );
    }

    #[test]
    fn mcexec_inserted_on_request() {
        let inv = parse("-n 2 ./a.out").unwrap();
        let cmd = inv.launch_command(&["mpiexec.mpich".into()], Some(OsStr::new("mcexec")));
        assert_eq!(
            cmd,
            ["mpiexec.mpich", "-n", "2", "mcexec", "./a.out"]
                .map(OsString::from)
                .to_vec()
        );
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(
            parse("-frobnicate ./a.out"),
            Err(OptionError::Unknown("-frobnicate".into()))
        );
        assert_eq!(parse("-n"), Err(OptionError::MissingValue("-n".into(), 1)));
        assert_eq!(parse("-n 0 ./a"), Err(OptionError::BadCount("0".into())));
        assert_eq!(
            parse("-n two ./a"),
            Err(OptionError::BadCount("two".into()))
        );
        assert_eq!(parse("-n 2"), Err(OptionError::NoProgram));
        assert_eq!(parse("-n 1 ./a : -n 1 ./b"), Err(OptionError::Mpmd));
        assert_eq!(
            parse("-configfile f"),
            Err(OptionError::Unsupported("-configfile".into()))
        );
        assert_eq!(parse("--help"), Err(OptionError::Help));
    }
}
