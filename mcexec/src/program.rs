//! Finding and checking the program to run, with a shell's exit codes:
//! 127 when it cannot be found, 126 when it is found but cannot be executed
//! (no permission, a directory, not an x86-64 ELF executable).
//!
//! A `#!` script runs as Linux's execve runs it: its interpreter (with the
//! line's one optional argument) gets the script's path, then the user's
//! arguments; an interpreter may be a script itself, up to Linux's limit
//! ([`ihk_abi::linux::script`], which the LWK's execve reads the same way).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ihk_abi::linux::script;
use nix::unistd::{access, AccessFlags};

/// Why the program cannot run; `exit_code` is what a shell would return.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("{0}: command not found")]
    NotFound(String),
    #[error("{0}: No such file or directory")]
    NoSuchFile(String),
    #[error("{0}: Permission denied")]
    NotExecutable(String),
    #[error("{0}: Is a directory")]
    IsDirectory(String),
    #[error("{path}: cannot execute binary file: {why}")]
    BadFormat { path: String, why: String },
    /// A script whose interpreter cannot run (`err` as execve reports it).
    #[error("{path}: bad interpreter {interp}: {err}")]
    BadInterpreter { path: String, interp: String, err: std::io::Error },
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
}

impl ProgramError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ProgramError::NotFound(_) | ProgramError::NoSuchFile(_) => 127,
            ProgramError::BadInterpreter { err, .. } if err.kind() == std::io::ErrorKind::NotFound => 127,
            _ => 126,
        }
    }
}

/// An opened, checked executable.
#[derive(Debug)]
pub struct Program {
    /// The path used to open it (AT_EXECFN).
    pub path: PathBuf,
    pub file: File,
    pub size: u64,
    pub kind: ElfKind,
    /// The PT_INTERP path of a dynamically linked program.
    pub interp: Option<PathBuf>,
}

/// ELF types the LWK loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfKind {
    /// ET_EXEC, loaded at its link addresses.
    Exec,
    /// ET_DYN (static-pie, or a dynamic program with an interpreter).
    Dyn,
}

/// Resolve `name` like a shell: a name with a '/' is used as is, otherwise
/// the first executable regular file of that name in `$PATH`.
pub fn resolve(name: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, ProgramError> {
    let shown = name.to_string_lossy().into_owned();
    if name.is_empty() {
        return Err(ProgramError::NotFound(shown));
    }
    if name.as_bytes().contains(&b'/') {
        let p = PathBuf::from(name);
        return match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => Err(ProgramError::IsDirectory(shown)),
            Ok(_) if access(&p, AccessFlags::X_OK).is_err() => Err(ProgramError::NotExecutable(shown)),
            Ok(_) => Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ProgramError::NoSuchFile(shown)),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                Err(ProgramError::NotExecutable(shown))
            }
            Err(err) => Err(ProgramError::Io { path: shown, err }),
        };
    }
    let default_path = OsString::from("/usr/local/bin:/usr/bin:/bin");
    let path_var = path_var.unwrap_or(&default_path);
    let mut found_unexecutable = false;
    for dir in path_var.as_bytes().split(|&b| b == b':') {
        // An empty entry means the current directory, as in POSIX sh.
        let dir = if dir.is_empty() { Path::new(".") } else { Path::new(OsStr::from_bytes(dir)) };
        let candidate = dir.join(name);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() => {
                if access(&candidate, AccessFlags::X_OK).is_ok() {
                    return Ok(candidate);
                }
                found_unexecutable = true;
            }
            _ => {}
        }
    }
    if found_unexecutable {
        Err(ProgramError::NotExecutable(shown))
    } else {
        Err(ProgramError::NotFound(shown))
    }
}

const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_INTERP: u32 = 3;

/// The program to start: the ELF executable that runs (a script's
/// interpreter), its argument vector, and the path the user named
/// (AT_EXECFN, and the name the process gets).
#[derive(Debug)]
pub struct Launch {
    pub program: Program,
    pub argv: Vec<OsString>,
    pub execfn: PathBuf,
}

/// Open `path` (already resolved) to run with `argv`: an ELF executable
/// as it is, a `#!` script through its interpreter, as execve does.
pub fn open_launch(path: &Path, argv: Vec<OsString>) -> Result<Launch, ProgramError> {
    let mut argv = argv;
    let mut file = path.to_path_buf();
    let mut rewrites = 0;
    let mut first_interp: Option<PathBuf> = None;
    loop {
        let head = match (read_head(&file), &first_interp) {
            (Ok(h), _) => h,
            // The user's own program: its errors as a shell reports them.
            (Err(e), None) => return Err(e),
            (Err(e), Some(first)) => return Err(bad_interpreter(path, first, e)),
        };
        if !script::is_script(&head.bytes) {
            let program = check_elf(&file, head)?;
            return Ok(Launch { program, argv, execfn: path.to_path_buf() });
        }
        let shown = file.to_string_lossy().into_owned();
        let line = script::parse(&head.bytes).map_err(|_| ProgramError::BadFormat {
            path: shown.clone(),
            why: "Exec format error (a #! line without an interpreter)".into(),
        })?;
        let interp = PathBuf::from(OsStr::from_bytes(line.interp));
        // Named as a shell does: the user's script and its interpreter.
        let first = first_interp.get_or_insert_with(|| interp.clone()).clone();
        rewrites = script::next_rewrite(rewrites).map_err(|e| ProgramError::BadInterpreter {
            path: path.to_string_lossy().into_owned(),
            interp: first.to_string_lossy().into_owned(),
            err: std::io::Error::from_raw_os_error(e.0),
        })?;
        // Linux: argv[0] gives way to the interpreter, its argument and
        // the script's path.
        let mut next = vec![interp.clone().into_os_string()];
        next.extend(line.arg.map(|a| OsStr::from_bytes(a).to_os_string()));
        next.push(file.into_os_string());
        next.extend(argv.into_iter().skip(1));
        argv = next;
        file = interp;
    }
}

/// A file's error as the interpreter of `script`.
fn bad_interpreter(script: &Path, interp: &Path, e: ProgramError) -> ProgramError {
    let err = match e {
        ProgramError::NotFound(_) | ProgramError::NoSuchFile(_) => std::io::ErrorKind::NotFound.into(),
        ProgramError::NotExecutable(_) | ProgramError::IsDirectory(_) => {
            std::io::Error::from_raw_os_error(libc::EACCES)
        }
        ProgramError::Io { err, .. } | ProgramError::BadInterpreter { err, .. } => err,
        ProgramError::BadFormat { .. } => std::io::Error::from_raw_os_error(libc::ENOEXEC),
    };
    ProgramError::BadInterpreter {
        path: script.to_string_lossy().into_owned(),
        interp: interp.to_string_lossy().into_owned(),
        err,
    }
}

/// An opened file and its first bytes (as much of [`script::BUF_SIZE`]
/// as it has).
struct Head {
    file: File,
    size: u64,
    bytes: Vec<u8>,
}

/// Open `path` for execution: an executable regular file.
fn read_head(path: &Path) -> Result<Head, ProgramError> {
    let shown = path.to_string_lossy().into_owned();
    let io = |err| ProgramError::Io { path: shown.clone(), err };
    let mut file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => ProgramError::NotExecutable(shown.clone()),
        std::io::ErrorKind::NotFound => ProgramError::NoSuchFile(shown.clone()),
        _ => io(e),
    })?;
    let md = file.metadata().map_err(io)?;
    if md.is_dir() {
        return Err(ProgramError::IsDirectory(shown));
    }
    if !md.is_file() || access(path, AccessFlags::X_OK).is_err() {
        return Err(ProgramError::NotExecutable(shown));
    }
    let mut bytes = vec![0u8; script::BUF_SIZE];
    let n = read_full(&mut file, &mut bytes).map_err(io)?;
    bytes.truncate(n);
    Ok(Head { file, size: md.len(), bytes })
}

/// Check the file `head` was read from is an x86-64 ELF executable the
/// LWK can load.
fn check_elf(path: &Path, head: Head) -> Result<Program, ProgramError> {
    let shown = path.to_string_lossy().into_owned();
    let io = |err| ProgramError::Io { path: shown.clone(), err };
    let bad = |why: &str| ProgramError::BadFormat { path: shown.clone(), why: why.to_string() };
    let Head { file, size, bytes } = head;
    let n = bytes.len().min(64);
    let mut eh = [0u8; 64];
    eh[..n].copy_from_slice(&bytes[..n]);
    if n < 4 || &eh[..4] != b"\x7fELF" {
        return Err(bad("Exec format error (not an ELF file)"));
    }
    if n < 64 {
        return Err(bad("Exec format error (truncated ELF header)"));
    }
    if eh[4] != 2 || eh[5] != 1 {
        return Err(bad("Exec format error (not a 64-bit little-endian ELF)"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([eh[o], eh[o + 1]]);
    let u64_at = |o: usize| u64::from_le_bytes(eh[o..o + 8].try_into().unwrap());
    if u16_at(18) != EM_X86_64 {
        return Err(bad("Exec format error (not an x86-64 program)"));
    }
    let kind = match u16_at(16) {
        ET_EXEC => ElfKind::Exec,
        ET_DYN => ElfKind::Dyn,
        _ => return Err(bad("Exec format error (not an executable)")),
    };
    let phoff = u64_at(32);
    let phentsize = u16_at(54) as u64;
    let phnum = u16_at(56) as u64;
    if phentsize != 56 || phnum == 0 || phnum > 128 || !phoff.checked_add(phnum * 56).is_some_and(|e| e <= size) {
        return Err(bad("Exec format error (bad program headers)"));
    }
    let mut ph = vec![0u8; (phnum * 56) as usize];
    file.read_exact_at(&mut ph, phoff).map_err(io)?;
    let mut interp = None;
    for e in ph.chunks_exact(56) {
        let p_type = u32::from_le_bytes(e[0..4].try_into().unwrap());
        if p_type == PT_INTERP {
            let off = u64::from_le_bytes(e[8..16].try_into().unwrap());
            let len = u64::from_le_bytes(e[32..40].try_into().unwrap());
            if len == 0 || len > 4096 || !off.checked_add(len).is_some_and(|e| e <= size) {
                return Err(bad("Exec format error (bad PT_INTERP)"));
            }
            let mut buf = vec![0u8; len as usize];
            file.read_exact_at(&mut buf, off).map_err(io)?;
            while buf.last() == Some(&0) {
                buf.pop();
            }
            interp = Some(PathBuf::from(OsStr::from_bytes(&buf)));
        }
    }
    Ok(Program { path: path.to_path_buf(), file, size, kind, interp })
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn resolves_on_path_like_a_shell() {
        let d = tempfile::tempdir().unwrap();
        let exe = d.path().join("tool");
        std::fs::write(&exe, b"\x7fELF").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let noexec = d.path().join("data");
        std::fs::write(&noexec, b"x").unwrap();
        let path = OsString::from(format!("/nonexistent:{}", d.path().display()));
        assert_eq!(resolve(OsStr::new("tool"), Some(&path)).unwrap(), exe);
        let e = resolve(OsStr::new("nope"), Some(&path)).unwrap_err();
        assert_eq!(e.exit_code(), 127);
        assert_eq!(e.to_string(), "nope: command not found");
        // Present but not executable: 126 unless a later entry is executable.
        if nix::unistd::geteuid().is_root() {
            // root passes access(X_OK) only if some x bit is set: still 126.
        }
        assert_eq!(resolve(OsStr::new("data"), Some(&path)).unwrap_err().exit_code(), 126);
        assert_eq!(resolve(d.path().as_os_str(), None).unwrap_err().exit_code(), 126);
        let missing = d.path().join("missing");
        assert_eq!(resolve(missing.as_os_str(), None).unwrap_err().exit_code(), 127);
    }

    #[test]
    fn checks_the_elf() {
        let d = tempfile::tempdir().unwrap();
        let junk = d.path().join("junk");
        std::fs::write(&junk, b"hello world").unwrap();
        std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(open(&junk).unwrap_err().to_string().contains("not an ELF"));
        // A 32-bit ELF header.
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 1;
        h[5] = 1;
        let e32 = d.path().join("e32");
        std::fs::write(&e32, &h).unwrap();
        std::fs::set_permissions(&e32, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(open(&e32).unwrap_err().to_string().contains("not a 64-bit"));
        // A real program of this machine.
        let me = std::env::current_exe().unwrap();
        let p = open(&me).unwrap();
        assert_eq!(p.kind, ElfKind::Dyn);
        assert!(p.interp.is_some(), "test binaries are dynamically linked");
        if Path::new("/bin/busybox").exists() {
            let b = open(Path::new("/bin/busybox")).unwrap();
            assert_eq!(b.interp, None);
        }
    }

    fn open(path: &Path) -> Result<Program, ProgramError> {
        open_launch(path, vec![path.as_os_str().to_os_string()]).map(|l| l.program)
    }

    fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn scripts_run_through_their_interpreters() {
        let d = tempfile::tempdir().unwrap();
        let me = std::env::current_exe().unwrap();
        let a = script(d.path(), "a", &format!("#!{} --flag  x\n", me.display()));
        let b = script(d.path(), "b", &format!("#!{}\n", a.display()));
        let os = |s: &str| OsString::from(s);
        let l = open_launch(&b, vec![os("b-argv0"), os("one"), os("two")]).unwrap();
        // Linux's rewriting: argv[0] gives way to interpreter, argument, path.
        let want = [me.as_os_str(), OsStr::new("--flag  x"), a.as_os_str(), b.as_os_str(), OsStr::new("one"), OsStr::new("two")];
        assert_eq!(l.argv, want.iter().map(|s| s.to_os_string()).collect::<Vec<_>>());
        assert_eq!(l.execfn, b);
        assert_eq!(l.program.path, me);
        // A missing interpreter is the shell's 127, a non-executable one 126.
        let gone = script(d.path(), "gone", "#!/nonexistent/interp\n");
        let e = open_launch(&gone, vec![os("gone")]).unwrap_err();
        assert_eq!(e.exit_code(), 127, "{e}");
        assert!(e.to_string().contains("bad interpreter /nonexistent/interp"), "{e}");
        let data = d.path().join("data");
        std::fs::write(&data, "x").unwrap();
        let bad = script(d.path(), "bad", &format!("#!{}\n", data.display()));
        assert_eq!(open_launch(&bad, vec![os("bad")]).unwrap_err().exit_code(), 126);
        // No interpreter named: ENOEXEC's 126.
        let empty = script(d.path(), "empty", "#!\n");
        assert_eq!(open_launch(&empty, vec![os("empty")]).unwrap_err().exit_code(), 126);
    }

    #[test]
    fn nested_scripts_stop_where_linux_does() {
        let d = tempfile::tempdir().unwrap();
        let me = std::env::current_exe().unwrap();
        let mut prev = script(d.path(), "s0", &format!("#!{}\n", me.display()));
        let mut chain = vec![prev.clone()];
        for i in 1..=script::MAX_REWRITES {
            prev = script(d.path(), &format!("s{i}"), &format!("#!{}\n", prev.display()));
            chain.push(prev.clone());
        }
        // s0..s4: at most MAX_REWRITES scripts before the binary.
        let ok = &chain[script::MAX_REWRITES - 1];
        let l = open_launch(ok, vec![ok.as_os_str().to_os_string()]).unwrap();
        assert_eq!(l.argv.len(), 1 + script::MAX_REWRITES);
        let deep = &chain[script::MAX_REWRITES];
        let e = open_launch(deep, vec![deep.as_os_str().to_os_string()]).unwrap_err();
        assert!(e.to_string().contains("Too many levels of symbolic links"), "{e}");
        assert_eq!(e.exit_code(), 126);
    }
}
