//! execve's details on the LWK against Linux's (issue 19): `#!` scripts
//! started by mcexec and by the LWK's execve (interpreter argument, nested
//! scripts up to Linux's limit, ELOOP, ENOEXEC), execveat, /proc/self/exe
//! after an execve, and listings of the LWK's /proc and /sys directories.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{can_run, compile, Partition};

fn script(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.to_str().unwrap().to_string()
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

#[test]
fn execve_of_scripts_and_execveat_match_linux() {
    if !can_run("execve_of_scripts_and_execveat_match_linux") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(exe) = compile("execs.c", &["-static"], tmp.path(), "execs") else { return };
    let (lin_dir, lwk_dir) = (tmp.path().join("linux"), tmp.path().join("lwk"));
    std::fs::create_dir_all(&lin_dir).unwrap();
    std::fs::create_dir_all(&lwk_dir).unwrap();
    let lin = Command::new(&exe).arg(&lin_dir).arg("/bin/sh").output().unwrap();
    assert!(lin.status.success(), "{}", text(&lin.stderr));
    let p = Partition::boot("512M", &[]);
    let lwk = p.mcexec(&[exe.to_str().unwrap(), lwk_dir.to_str().unwrap(), "/bin/sh"]);
    assert!(lwk.status.success(), "execs failed on the LWK: {}", text(&lwk.stderr));
    let (lin, lwk) = (text(&lin.stdout), text(&lwk.stdout));
    // Linux's own answers, which the LWK must give too.
    for want in [
        "s1: status 0: [DIR/s0] [DIR/s1 one two words] 3",
        "s4: status 0:",
        "s5: status 99: errno ELOOP",
        "witharg: status 0: arg-e [DIR/witharg] [one two words]",
        "missing: status 99: errno ENOENT",
        "plain: status 99: errno ENOEXEC",
        "empty-shebang: status 99: errno ENOEXEC",
        "s0 without argv: status 0: [DIR/s0] [] 0",
        "execveat dirfd s0: status 0: [/dev/fd/",
        "execveat empty path busybox: status 0: fexecve of busybox",
        "execveat cloexec script: status 99: errno ENOENT",
        "execveat nofollow link: status 99: errno ELOOP",
        "execveat bad flags: status 99: errno EINVAL",
        "/proc/self/exe after execve: status 0: /usr/bin/busybox",
        "execve /proc/self/exe: status 0: [again][--print-args][x]",
        "cpuN entries match the online CPUs: yes",
        "cpu0 listed: yes",
        "/proc/self/task entries: 1",
        "done",
    ] {
        assert!(lin.contains(want), "Linux does not say {want:?}:\n{lin}");
    }
    assert_eq!(lwk, lin, "the LWK and Linux differ");
}

#[test]
fn mcexec_runs_scripts_and_lists_the_lwk_view() {
    if !can_run("mcexec_runs_scripts_and_lists_the_lwk_view") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s0 = script(d, "s0", "#!/bin/sh\necho \"[$0]\" \"[$*]\" \"$#\"\n");
    let mut prev = s0.clone();
    let mut chain = vec![s0];
    for i in 1..=5 {
        prev = script(d, &format!("s{i}"), &format!("#!{prev}\n"));
        chain.push(prev.clone());
    }
    // A python3 on PATH that is a script, as pyenv's shims are.
    let bin = d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    script(&bin, "python3", "#!/usr/bin/env bash\nexec /usr/bin/python3.11 \"$@\"\n");
    let missing = script(d, "missing", "#!/nonexistent/interp\n");

    let p = Partition::boot("512M", &[]);
    // A #!/bin/sh script with its arguments, and nested four deep.
    for s in [&chain[0], &chain[4]] {
        let lwk = p.mcexec(&[s, "a", "b c"]);
        let lin = Command::new(s).args(["a", "b c"]).output().unwrap();
        assert!(lwk.status.success(), "{s} failed on the LWK");
        assert_eq!(text(&lwk.stdout), text(&lin.stdout));
        assert!(text(&lwk.stdout).contains("b c]"));
    }
    // One script more than Linux allows: ELOOP, a shell's 126.
    let deep = p.mcexec(&[&chain[5]]);
    assert_eq!(deep.status.code(), Some(126));
    assert!(text(&deep.stderr).contains("Too many levels of symbolic links"), "{}", text(&deep.stderr));
    // A missing interpreter: a shell's 127.
    assert_eq!(p.mcexec(&[&missing]).status.code(), Some(127));
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let py = p.mcexec_command(&["python3", "-c", "print(1)"]).env("PATH", &path).output().unwrap();
    common::log(Path::new("mcexec"), &["python3 (a script on PATH)", "-c", "print(1)"], &py);
    assert!(py.status.success());
    assert_eq!(text(&py.stdout), "1\n");
    assert!(p.mcexec(&["/bin/sh", "-c", "exec /bin/true"]).status.success());

    // The LWK's view: its one CPU (LWK CPU 0 is Linux's CPU 1) and its
    // one thread.
    let ls = p.mcexec(&["/bin/busybox", "ls", "/sys/devices/system/cpu"]);
    let names: Vec<String> = text(&ls.stdout).lines().map(str::to_string).collect();
    let cpus: Vec<&String> =
        names.iter().filter(|n| n.strip_prefix("cpu").is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))).collect();
    assert_eq!(cpus, ["cpu0"], "{names:?}");
    assert!(names.iter().any(|n| n == "online"), "{names:?}");
    let task = p.mcexec(&["/bin/busybox", "sh", "-c", "ls /proc/self/task; echo pid=$$"]);
    let out = text(&task.stdout);
    let mut lines = out.lines();
    let (tids, pid) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    // `ls` ran in a child: its own single thread.
    assert!(!tids.is_empty() && tids.bytes().all(|b| b.is_ascii_digit()), "{out}");
    assert!(pid.starts_with("pid="), "{out}");
    let own = p.mcexec(&["/usr/bin/python3.11", "-c", "import os; print(os.listdir('/proc/self/task') == [str(os.getpid())])"]);
    assert_eq!(text(&own.stdout), "True\n", "{}", text(&own.stderr));
}
