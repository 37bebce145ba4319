//! Least privilege for stdio MCP servers on Linux, without containers.
//!
//! A local MCP server runs with its user's full rights: one poisoned instruction or injected
//! argument can read `~/.ssh` or open a connection anywhere. [`prepare`] turns a program, its
//! arguments and a [`SandboxPolicy`] into a [`tokio::process::Command`] that, when spawned,
//! confines the child:
//!
//! - a cleared environment: only the policy's `env` pairs, `PATH`, `HOME` (a private directory,
//!   created mode 0700) and `TMPDIR` (`HOME/tmp`);
//! - its own process group (`process_group(0)`) and `kill_on_drop`;
//! - an empty capability bounding set (a root gateway's child does not keep root's
//!   capabilities), `no_new_privs`, and rlimits on memory (`RLIMIT_DATA`, optionally `RLIMIT_AS`), CPU time,
//!   open files and processes;
//! - Landlock: read (and execute) only the system directories, the executable's own
//!   directories, `/proc/self` and the configured `read` paths; write only its home and the
//!   configured `write` paths; with ABI 4+, TCP `connect`/`bind` only as the policy allows; with
//!   ABI 6+, no signals to and no abstract-socket connections with processes outside the sandbox;
//! - a seccomp deny-list ([`seccomp::DENIED_SYSCALLS`], namespace flags, raw sockets, and every
//!   socket family but `AF_UNIX` when the network is denied).
//!
//! **Fail closed.** Everything the child will do is decided in the parent, before anything is
//! started: when the kernel lacks a protection the policy asks for, [`prepare`] returns
//! [`SandboxError::Unsupported`] unless the policy is `best_effort`, and the [`SandboxReport`]
//! always says which protections are in force. A pinned executable whose SHA-256 differs is
//! refused ([`SandboxError::HashMismatch`]).
//!
//! **Why a separate crate.** It is Linux-specific, holds the project's one `unsafe` exception
//! (the `pre_exec` hook in `sys.rs`, which must make raw system calls between `fork` and `exec`),
//! and changes for different reasons than the MCP protocol code.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

/// The `sandbox` table of `moat.toml` (defined in moat-config, re-exported for convenience).
pub use moat_config::sandbox as config;
mod error;
mod policy;
mod probe;
mod report;
pub mod seccomp;
mod selftest;
mod sys;

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope, ABI,
};
use sha2::{Digest, Sha256};

pub use error::SandboxError;
pub use policy::{parse_sha256, HostPort, Limits, Network, SandboxPolicy, DEFAULT_PATH};
pub use probe::{KernelSupport, LandlockSupport, UserNamespaces};
pub use report::{Protection, ProtectionState, SandboxReport};
pub use selftest::{self_test, SelfTest};

/// System paths every child may read and execute: the loader, shared libraries, interpreters,
/// CA certificates, name resolution and time zone data, user and group names (not passwords).
/// Paths missing on this machine are skipped. Not `/tmp` (shared with every other process of
/// the machine: the child gets its own `TMPDIR` instead), not `/home`, `/root`, `/etc` as a whole.
pub const SYSTEM_READ_PATHS: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/libx32",
    "/bin",
    "/sbin",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/crypto-policies",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/passwd",
    "/etc/group",
    "/etc/mime.types",
    "/etc/os-release",
    "/proc/meminfo",
    "/proc/cpuinfo",
    "/proc/stat",
    "/sys/devices/system/cpu",
    "/sys/fs/cgroup",
    "/dev/zero",
    "/dev/random",
    "/dev/urandom",
];

/// Device files every child may read and write.
pub const SYSTEM_WRITE_PATHS: &[&str] = &["/dev/null", "/dev/full"];

/// Builds the command that starts `program` with `args` inside the sandbox `policy` describes.
///
/// `program` is resolved via the policy's `PATH` (unless it contains a `/`), hashed when the
/// policy pins a digest, and started by its resolved path. The caller sets stdin/stdout/stderr
/// and spawns; the confinement is applied in the child before `exec`, so a spawn error after a
/// successful `prepare` is an ordinary `io::Error` (e.g. the kernel refused a system call).
///
/// # Errors
/// - [`SandboxError::NotFound`] / [`SandboxError::Executable`]: no such executable.
/// - [`SandboxError::HashMismatch`]: the executable differs from the pinned digest.
/// - [`SandboxError::Path`] / [`SandboxError::Home`]: a configured path is unusable.
/// - [`SandboxError::Unsupported`]: the kernel lacks a protection and the policy is not
///   best-effort.
/// - [`SandboxError::Landlock`] / [`SandboxError::Seccomp`]: the rules could not be built.
pub fn prepare<I, S>(
    program: impl AsRef<OsStr>,
    args: I,
    policy: &SandboxPolicy,
) -> Result<(tokio::process::Command, SandboxReport), SandboxError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    prepare_for_kernel(&KernelSupport::probe(), program, args, policy)
}

/// [`prepare`] against a given description of the kernel instead of the probed one: the
/// protections `kernel` lacks are treated as missing (fail closed, or best-effort). Tests use it
/// to check the fail-closed decisions on kernels they do not run on; never claim more support
/// than [`KernelSupport::probe`] reports, or spawning fails in the child.
///
/// # Errors
/// As [`prepare`].
pub fn prepare_for_kernel<I, S>(
    support: &KernelSupport,
    program: impl AsRef<OsStr>,
    args: I,
    policy: &SandboxPolicy,
) -> Result<(tokio::process::Command, SandboxReport), SandboxError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let executable = resolve_executable(program.as_ref(), &policy.path)?;
    let canonical = std::fs::canonicalize(&executable)
        .map_err(|source| SandboxError::Executable { path: executable.clone(), source })?;

    let mut protections = Vec::new();
    let sha256 = match &policy.sha256 {
        Some(expected) => {
            let actual = sha256_file(&canonical)?;
            if actual != *expected {
                return Err(SandboxError::HashMismatch {
                    path: executable,
                    expected: hex::encode(expected),
                    actual: hex::encode(actual),
                });
            }
            protections.push(enforced("sha256", format!("executable matches {}", hex::encode(actual))));
            Some(hex::encode(actual))
        }
        None => {
            protections.push(off("sha256", "executable not pinned".into()));
            None
        }
    };

    let home = &policy.home;
    let tmp = home.join("tmp");
    for dir in [home, &tmp] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(|source| SandboxError::Home { path: dir.clone(), source })?;
    }
    for path in policy.read.iter().chain(&policy.write).chain(&policy.cwd) {
        std::fs::metadata(path).map_err(|source| SandboxError::Path { path: path.clone(), source })?;
    }

    // What the child may read: system paths, the executable's directories, configured paths.
    let mut read: Vec<PathBuf> = SYSTEM_READ_PATHS.iter().map(PathBuf::from).filter(|p| p.exists()).collect();
    for dir in executable_dirs(&executable).into_iter().chain(executable_dirs(&canonical)) {
        if !read.contains(&dir) {
            read.push(dir);
        }
    }
    read.extend(policy.read.iter().cloned());
    let mut write: Vec<PathBuf> = vec![home.clone()];
    write.extend(policy.write.iter().cloned());

    // Decide, in the parent, what the kernel can enforce; fail closed unless best-effort.
    let unsupported = |protection: &'static str, reason: String| -> Result<Protection, SandboxError> {
        if policy.best_effort {
            Ok(Protection { name: protection, state: ProtectionState::Missing, detail: reason })
        } else {
            Err(SandboxError::Unsupported { protection, reason })
        }
    };
    let landlock_abi = support.landlock.abi.filter(|abi| *abi >= 1);
    let landlock_reason = || match support.landlock.state {
        "disabled" => {
            "landlock is built into the kernel but not enabled (add `landlock` to the `lsm=` boot parameter)".to_owned()
        }
        _ => "the kernel has no landlock (Linux 5.13 or later with CONFIG_SECURITY_LANDLOCK)".to_owned(),
    };
    let seccomp_ok = support.seccomp_filter;
    let sockets = match policy.network {
        Network::Allow => seccomp::Sockets::AllButPacket,
        Network::AllowList(_) => seccomp::Sockets::UnixInetNetlink,
        Network::Deny => seccomp::Sockets::UnixOnly,
    };
    let tcp_rules = landlock_abi.is_some_and(|abi| abi >= 4) && policy.network != Network::Allow;

    let landlock = match landlock_abi {
        Some(abi) => {
            let child = build_landlock(abi, &read, &write, &policy.network, tcp_rules)?;
            protections.push(enforced(
                "filesystem",
                format!("landlock ABI {abi}: {} readable and {} writable paths", read.len(), write.len()),
            ));
            if abi >= 6 {
                protections.push(enforced("scopes", "no signals or abstract unix sockets outside the sandbox".into()));
            } else {
                protections.push(off("scopes", format!("landlock ABI {abi} has no scopes (needs 6)")));
            }
            Some(child)
        }
        None => {
            protections.push(unsupported("filesystem", landlock_reason())?);
            None
        }
    };

    let seccomp = if seccomp_ok {
        protections.push(enforced("seccomp", seccomp::describe(sockets)));
        seccomp::build(sockets)?
    } else {
        protections.push(unsupported("seccomp", "the kernel has no seccomp filter mode".into())?);
        Vec::new()
    };

    protections.push(match &policy.network {
        Network::Allow => off("network", "unrestricted".into()),
        Network::Deny => {
            let mut how = Vec::new();
            if seccomp_ok {
                how.push("seccomp refuses every socket but AF_UNIX");
            }
            if tcp_rules {
                how.push("landlock refuses TCP connect and bind");
            }
            if how.is_empty() {
                unsupported("network", "neither seccomp nor landlock TCP rules are available".into())?
            } else {
                enforced("network", format!("denied: {}", how.join("; ")))
            }
        }
        Network::AllowList(list) => {
            if tcp_rules {
                let ports: Vec<String> = list.iter().map(ToString::to_string).collect();
                enforced(
                    "network",
                    format!(
                        "landlock allows TCP connect to ports of {} (any host: landlock matches ports only), no bind; UDP not restricted; seccomp refuses socket families but unix/inet/inet6/netlink",
                        ports.join(", ")
                    ),
                )
            } else {
                let abi = landlock_abi.map_or("none".to_owned(), |a| a.to_string());
                unsupported("network", format!("a TCP allow-list needs landlock ABI 4 (Linux 6.7), this kernel has {abi}"))?
            }
        }
    });

    let rlimits = rlimits(&policy.limits);
    protections.push(enforced("rlimits", describe_limits(&policy.limits)));
    protections.push(enforced("no_new_privs", "set before exec".into()));
    protections.push(enforced("capabilities", "bounding and ambient sets emptied before exec".into()));
    let mut names: Vec<String> = policy.env.iter().map(|(n, _)| n.to_string_lossy().into_owned()).collect();
    names.extend(["PATH", "HOME", "TMPDIR"].map(String::from));
    protections.push(enforced("environment", format!("cleared; passes {}", names.join(", "))));

    let mut cmd = tokio::process::Command::new(&executable);
    cmd.args(args)
        .env_clear()
        .envs(policy.env.iter().map(|(k, v)| (k, v)))
        .env("PATH", &policy.path)
        .env("HOME", home)
        .env("TMPDIR", &tmp)
        .current_dir(policy.cwd.as_deref().unwrap_or(home))
        .process_group(0)
        .kill_on_drop(true);
    sys::install(&mut cmd, sys::ChildSetup { rlimits, landlock, seccomp });

    let report = SandboxReport { executable, sha256, landlock_abi, read, write, protections };
    Ok((cmd, report))
}

/// Resolves `program` the way `execvp` would with `path` as `PATH`: a name containing `/` is
/// taken as is (made absolute); otherwise the first executable regular file named `program` in
/// a `PATH` directory.
///
/// # Errors
/// [`SandboxError::NotFound`] when there is none.
pub fn resolve_executable(program: &OsStr, path: &OsStr) -> Result<PathBuf, SandboxError> {
    let not_found = || SandboxError::NotFound {
        program: program.to_string_lossy().into_owned(),
        path: path.to_string_lossy().into_owned(),
    };
    let is_executable =
        |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.is_empty() {
        return Err(not_found());
    }
    let as_path = Path::new(program);
    if program.to_string_lossy().contains('/') {
        let absolute = std::path::absolute(as_path)
            .map_err(|source| SandboxError::Executable { path: as_path.to_owned(), source })?;
        return if is_executable(&absolute) { Ok(absolute) } else { Err(not_found()) };
    }
    std::env::split_paths(path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(not_found)
}

/// SHA-256 of a file, streamed.
///
/// # Errors
/// [`SandboxError::Executable`] when it cannot be read.
pub fn sha256_file(path: &Path) -> Result<[u8; 32], SandboxError> {
    let io_err = |source| SandboxError::Executable { path: path.to_owned(), source };
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(io_err)?;
        match buf.get(..n) {
            Some([]) | None => break,
            Some(chunk) => hasher.update(chunk),
        }
    }
    Ok(hasher.finalize().into())
}

/// Describes how a sandboxed child ended, naming the limit it most likely hit.
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(libc::SIGXCPU)) => "killed by SIGXCPU: CPU time limit reached".into(),
        (None, Some(libc::SIGKILL)) => "killed by SIGKILL (CPU time hard limit, the gateway, or the OOM killer)".into(),
        (None, Some(sig @ (libc::SIGSEGV | libc::SIGABRT | libc::SIGBUS | libc::SIGTRAP))) => {
            format!("killed by signal {sig}: crashed, possibly on reaching the memory limit")
        }
        (None, Some(libc::SIGSYS)) => "killed by SIGSYS: a system call was refused".into(),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "ended".into(),
    }
}

// ---- helpers ----

fn enforced(name: &'static str, detail: String) -> Protection {
    Protection { name, state: ProtectionState::Enforced, detail }
}

fn off(name: &'static str, detail: String) -> Protection {
    Protection { name, state: ProtectionState::NotRequested, detail }
}

/// The directory holding the executable and, when that directory is `bin`/`sbin`, its parent
/// (a prefix such as `/usr/local`, a virtualenv, a pyenv version or `node_modules/.bin/..`),
/// because interpreters load their libraries from `PREFIX/lib`. The parent is not added when it is
/// `/`, the user's home or `~/.local` (which hold far more than one program).
fn executable_dirs(executable: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let Some(dir) = executable.parent() else { return dirs };
    dirs.push(dir.to_owned());
    let is_bin = dir.file_name().is_some_and(|n| n == "bin" || n == "sbin");
    if let (true, Some(prefix)) = (is_bin, dir.parent()) {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let too_broad = prefix == Path::new("/")
            || home.as_deref().is_some_and(|h| prefix == h || prefix == h.join(".local") || h.starts_with(prefix));
        if !too_broad {
            dirs.push(prefix.to_owned());
        }
    }
    dirs
}

fn build_landlock(
    abi: i32,
    read: &[PathBuf],
    write: &[PathBuf],
    network: &Network,
    tcp_rules: bool,
) -> Result<sys::LandlockChild, SandboxError> {
    let ll = |e: landlock::RulesetError| SandboxError::Landlock(e.to_string());
    let abi = ABI::from(abi);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))
        .map_err(ll)?;
    if tcp_rules {
        ruleset = ruleset.handle_access(AccessNet::from_all(abi)).map_err(ll)?;
    }
    if abi >= ABI::V6 {
        ruleset = ruleset.scope(Scope::from_all(abi)).map_err(ll)?;
    }
    let mut created = ruleset
        .create()
        .map_err(ll)?
        .add_rules(path_beneath_rules(read, AccessFs::from_read(abi)))
        .map_err(ll)?
        .add_rules(path_beneath_rules(write, AccessFs::from_all(abi)))
        .map_err(ll)?
        .add_rules(path_beneath_rules(SYSTEM_WRITE_PATHS, AccessFs::from_all(abi)))
        .map_err(ll)?;
    if let (true, Network::AllowList(list)) = (tcp_rules, network) {
        for entry in list {
            created = created.add_rule(NetPort::new(entry.port, AccessNet::ConnectTcp)).map_err(ll)?;
        }
    }
    let fd: Option<std::os::fd::OwnedFd> = created.into();
    let ruleset = fd.ok_or_else(|| SandboxError::Landlock("the kernel returned no ruleset".into()))?;
    Ok(sys::LandlockChild { ruleset, proc_self_access: AccessFs::from_read(abi).bits() })
}

fn rlimits(limits: &Limits) -> Vec<(libc::__rlimit_resource_t, libc::rlimit)> {
    let mut out = Vec::new();
    let mut push = |resource, soft: u64, hard: u64| {
        out.push((resource, libc::rlimit { rlim_cur: soft, rlim_max: hard }));
    };
    if let Some(bytes) = limits.memory_bytes {
        push(libc::RLIMIT_DATA, bytes, bytes);
    }
    if let Some(bytes) = limits.address_space_bytes {
        push(libc::RLIMIT_AS, bytes, bytes);
    }
    if let Some(secs) = limits.cpu_seconds {
        // SIGXCPU at the soft limit (a server may log and exit), SIGKILL one second later.
        push(libc::RLIMIT_CPU, secs, secs.saturating_add(1));
    }
    if let Some(n) = limits.open_files {
        push(libc::RLIMIT_NOFILE, n, n);
    }
    if let Some(n) = limits.processes {
        push(libc::RLIMIT_NPROC, n, n);
    }
    out
}

fn describe_limits(limits: &Limits) -> String {
    let show = |v: Option<u64>, unit: &str| v.map_or("inherited".to_owned(), |v| format!("{v}{unit}"));
    format!(
        "memory={} address_space={} cpu={} open_files={} processes={}",
        show(limits.memory_bytes.map(|b| b / (1024 * 1024)), "MiB"),
        show(limits.address_space_bytes.map(|b| b / (1024 * 1024)), "MiB"),
        show(limits.cpu_seconds, "s"),
        show(limits.open_files, ""),
        show(limits.processes, ""),
    )
}

/// The default private home of an upstream: `STATE_DIR/sandbox-home/NAME`, with every character
/// of the upstream name outside `[A-Za-z0-9._-]` replaced by `_` (and a leading `.` too), so that
/// a name cannot climb out of the directory.
pub fn default_home(state_dir: &Path, upstream: &str) -> PathBuf {
    let mut name: String = upstream
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        name.insert(0, '_');
    }
    state_dir.join("sandbox-home").join(name)
}

/// Environment pairs as [`SandboxPolicy::env`] wants them.
pub fn env_pairs<K: Into<OsString>, V: Into<OsString>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Vec<(OsString, OsString)> {
    pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect()
}
