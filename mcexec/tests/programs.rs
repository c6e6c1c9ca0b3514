//! C programs built by the test with `gcc -static` and `gcc -static-pie`:
//! arguments, environment, a file written and read back, 256 MiB allocated
//! and touched; the same output as on Linux.

mod common;

use common::{can_run, compile, Partition};

fn probe_env(cmd: &mut std::process::Command, file: &std::path::Path) {
    cmd.env_clear()
        .env("PROBE_GREETING", "hello LWK")
        .env("PROBE_FILE", file)
        .env("PROBE_ALLOC_MB", "256");
}

#[test]
fn static_and_static_pie_programs_run_like_on_linux() {
    if !can_run("static_and_static_pie_programs_run_like_on_linux") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(st) = compile("probe.c", &["-static"], tmp.path(), "probe-static") else { return };
    let Some(pie) = compile("probe.c", &["-static-pie"], tmp.path(), "probe-pie") else { return };
    let p = Partition::boot("512M", &[]);
    for exe in [&st, &pie] {
        let name = exe.file_name().unwrap().to_string_lossy().to_string();
        let lwk_file = tmp.path().join(format!("{name}.lwk"));
        let mut c = p.mcexec_command(&[exe.to_str().unwrap(), "one", "two words"]);
        probe_env(&mut c, &lwk_file);
        c.env("IHK_RUNTIME_DIR", p.runtime_dir());
        let lwk = c.output().unwrap();
        common::log(exe, &["one", "two words"], &lwk);
        assert!(lwk.status.success(), "{name} failed on the LWK");
        let lin_file = tmp.path().join(format!("{name}.linux"));
        let mut c = std::process::Command::new(exe);
        c.args(["one", "two words"]);
        probe_env(&mut c, &lin_file);
        let lin = c.output().unwrap();
        assert!(lin.status.success());
        let norm = |o: &[u8], f: &std::path::Path| String::from_utf8_lossy(o).replace(f.to_str().unwrap(), "FILE");
        assert_eq!(norm(&lwk.stdout, &lwk_file), norm(&lin.stdout, &lin_file), "{name}: LWK and Linux differ");
        let text = String::from_utf8_lossy(&lwk.stdout);
        assert!(text.contains("argv[2]=two words"), "{text}");
        assert!(text.contains("env PROBE_GREETING=hello LWK"), "{text}");
        assert!(text.contains("file written on the LWK"), "{text}");
        assert!(text.contains("touched 256 MiB"), "{text}");
        // The file is really on Linux.
        assert_eq!(std::fs::read_to_string(&lwk_file).unwrap(), "written on the LWK\n");
    }
}

#[test]
fn signal_handlers_and_interrupted_calls_behave_as_on_linux() {
    if !can_run("signal_handlers_and_interrupted_calls_behave_as_on_linux") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(exe) = compile("signals.c", &["-static"], tmp.path(), "signals") else { return };
    let p = Partition::boot("512M", &[]);
    let run = |mut c: std::process::Command| -> String {
        use std::io::Read;
        // stdin: a pipe that stays open, so read() blocks until SIGINT.
        let mut child = c
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let _keep_open = child.stdin.take();
        let mut out = child.stdout.take().unwrap();
        let mut text = String::new();
        let mut buf = [0u8; 256];
        while !text.contains("waiting\n") {
            let n = out.read(&mut buf).unwrap();
            assert!(n > 0, "ended before waiting: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        out.read_to_string(&mut text).unwrap();
        assert!(child.wait().unwrap().success(), "{text}");
        text
    };
    let lwk = run(p.mcexec_command(&[exe.to_str().unwrap()]));
    let lin = run(std::process::Command::new(&exe));
    assert_eq!(lwk, lin);
    assert!(lwk.contains("usr1 handled=1 acc=1.75") && lwk.contains("got_int=2"), "{lwk}");
    assert!(lwk.contains("blocked while ignored: pending 1 1, waited 1 1\n"), "{lwk}");
}

#[test]
fn dynamically_linked_programs_run_like_on_linux() {
    if !can_run("dynamically_linked_programs_run_like_on_linux") {
        return;
    }
    let p = Partition::boot("512M", &[]);
    for args in [&["/bin/ls", "-l", "/usr"][..], &["/usr/bin/md5sum", "/etc/os-release"], &["/bin/echo", "dynamic", "hello"]] {
        if !std::path::Path::new(args[0]).exists() {
            continue;
        }
        let lwk = p.mcexec(args);
        let lin = common::linux(args);
        assert!(lwk.status.success(), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&lwk.stdout), String::from_utf8_lossy(&lin.stdout), "{args:?}");
    }
}

/// A partition larger than 1 GiB starts programs and gives them more than
/// 1 GiB (the reserved memory's huge pages must not force a huge backing
/// granule on every LWK mapping).
#[test]
fn a_2g_partition_runs_a_program_that_touches_1200_mib() {
    if !can_run("a_2g_partition_runs_a_program_that_touches_1200_mib") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(exe) = compile("probe.c", &["-static"], tmp.path(), "probe-big") else { return };
    let p = Partition::boot("2G", &[]);
    let lwk_file = tmp.path().join("big.lwk");
    let mut c = p.mcexec_command(&[exe.to_str().unwrap(), "big"]);
    probe_env(&mut c, &lwk_file);
    c.env("PROBE_ALLOC_MB", "1200");
    c.env("IHK_RUNTIME_DIR", p.runtime_dir());
    let out = c.output().unwrap();
    common::log(&exe, &["big"], &out);
    assert!(out.status.success(), "probe failed on a 2G partition");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("touched 1200 MiB"), "{text}");
}
