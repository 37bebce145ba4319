//! The policy: plain data saying what a sandboxed stdio upstream may do.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::{NetworkConfig, SandboxConfig};
use moat_config::UpstreamConfig;

use crate::error::SandboxError;

/// What one sandboxed child may see and do. Build it with [`SandboxPolicy::new`] (every field at
/// its safe default) or [`SandboxPolicy::from_config`], then hand it to [`crate::prepare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPolicy {
    /// The child's whole environment besides `PATH`, `HOME` and `TMPDIR`: resolved
    /// `(name, value)` pairs. Nothing of the parent's environment is inherited.
    pub env: Vec<(OsString, OsString)>,
    /// `PATH` of the child; also the search path used to resolve a bare program name.
    pub path: OsString,
    /// Private `HOME` (created mode 0700 if missing, readable and writable; `TMPDIR` is `HOME/tmp`).
    pub home: PathBuf,
    /// Working directory of the child; `None` means its home.
    pub cwd: Option<PathBuf>,
    /// Resource limits.
    pub limits: Limits,
    /// Extra paths the child may read (and execute), recursively.
    pub read: Vec<PathBuf>,
    /// Paths the child may read and write, recursively.
    pub write: Vec<PathBuf>,
    /// What the child may do on the network.
    pub network: Network,
    /// Start even when the kernel lacks a protection this policy asks for.
    pub best_effort: bool,
    /// Expected SHA-256 of the resolved executable.
    pub sha256: Option<[u8; 32]>,
}

/// rlimits; `None` leaves the parent's limit in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `RLIMIT_DATA`, bytes of heap and private writable mappings: what a runaway allocation
    /// consumes, without the address-space reservations of V8, Go or the JVM.
    pub memory_bytes: Option<u64>,
    /// `RLIMIT_AS`, bytes of address space (also bounds shared mappings, which `RLIMIT_DATA`
    /// does not count). Off by default: V8 sizes its heap from it.
    pub address_space_bytes: Option<u64>,
    /// `RLIMIT_CPU`, seconds of CPU time (SIGXCPU at the limit, SIGKILL one second later).
    pub cpu_seconds: Option<u64>,
    /// `RLIMIT_NOFILE`.
    pub open_files: Option<u64>,
    /// `RLIMIT_NPROC` (counted per user by Linux, threads included).
    pub processes: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        use crate::config as d;
        Limits {
            memory_bytes: Some(d::DEFAULT_MEMORY_MB.saturating_mul(1024 * 1024)),
            address_space_bytes: None,
            cpu_seconds: Some(d::DEFAULT_CPU_SECONDS),
            open_files: Some(d::DEFAULT_OPEN_FILES),
            processes: Some(d::DEFAULT_PROCESSES),
        }
    }
}

/// Network access of the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// No restriction.
    Allow,
    /// No network: every socket family but `AF_UNIX` fails (seccomp) and, with Landlock ABI 4+, TCP
    /// `connect`/`bind` fail too.
    Deny,
    /// TCP `connect` to these ports only (Landlock ABI 4+); no `bind`. Landlock matches ports,
    /// not hosts: the host part is recorded for the report but the kernel does not enforce it.
    AllowList(Vec<HostPort>),
}

/// One `host:port` entry of a network allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name or address, as configured.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl HostPort {
    /// Parses `host:port` (`[v6addr]:port` for IPv6).
    ///
    /// # Errors
    /// [`SandboxError::InvalidHostPort`] when there is no host, no port, or the port is not 1–65535.
    pub fn parse(entry: &str) -> Result<Self, SandboxError> {
        let invalid = || SandboxError::InvalidHostPort { entry: entry.to_owned() };
        let (host, port) = entry.rsplit_once(':').ok_or_else(invalid)?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let port: u16 = port.parse().map_err(|_| invalid())?;
        if host.is_empty() || port == 0 {
            return Err(invalid());
        }
        Ok(HostPort { host: host.to_owned(), port })
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `PATH` given to a child when none is configured.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

impl SandboxPolicy {
    /// The safe default: empty environment, `PATH` = [`DEFAULT_PATH`], `home` as the private home,
    /// default rlimits, no extra paths, no network, not best-effort, no pin.
    pub fn new(home: impl Into<PathBuf>) -> Self {
        SandboxPolicy {
            env: Vec::new(),
            path: OsString::from(DEFAULT_PATH),
            home: home.into(),
            cwd: None,
            limits: Limits::default(),
            read: Vec::new(),
            write: Vec::new(),
            network: Network::Deny,
            best_effort: false,
            sha256: None,
        }
    }

    /// Builds the policy of one upstream from its `sandbox` table.
    ///
    /// `default_home` is used when the table names no `home` (the gateway passes a directory
    /// named after the upstream under its state directory). `env` is the upstream's resolved
    /// environment; a `PATH` entry in it becomes the child's `PATH` (else [`DEFAULT_PATH`]).
    /// A leading `~/` in a path means the gateway user's home.
    ///
    /// # Errors
    /// An invalid `sha256` or `network` entry.
    pub fn from_config(
        config: &SandboxConfig,
        default_home: &Path,
        env: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Self, SandboxError> {
        let mut policy =
            SandboxPolicy::new(config.home.as_deref().map(expand_tilde).unwrap_or_else(|| default_home.to_owned()));
        for (name, value) in env {
            if name == "PATH" {
                policy.path = value;
            } else if name != "HOME" && name != "TMPDIR" {
                policy.env.push((name, value));
            }
        }
        policy.read = config.read.iter().map(|p| expand_tilde(p)).collect();
        policy.write = config.write.iter().map(|p| expand_tilde(p)).collect();
        policy.network = match &config.network {
            NetworkConfig::Allow => Network::Allow,
            NetworkConfig::Deny => Network::Deny,
            NetworkConfig::AllowList(list) => {
                Network::AllowList(list.iter().map(|e| HostPort::parse(e)).collect::<Result<_, _>>()?)
            }
        };
        policy.best_effort = config.best_effort;
        policy.sha256 = config.sha256.as_deref().map(parse_sha256).transpose()?;
        policy.limits = Limits {
            memory_bytes: Some(config.memory_mb.saturating_mul(1024 * 1024)),
            address_space_bytes: config.address_space_mb.map(|mb| mb.saturating_mul(1024 * 1024)),
            cpu_seconds: Some(config.cpu_seconds),
            open_files: Some(config.open_files),
            processes: Some(config.processes),
        };
        Ok(policy)
    }
}

impl SandboxPolicy {
    /// The policy of one stdio upstream as the gateway starts it: its `sandbox` table (absent:
    /// every default), its resolved `env` (a `PATH` entry becomes the child's `PATH`), its `cwd`;
    /// relative `read`, `write`, `home` and `cwd` paths are taken from `base_dir` (the config
    /// file's directory), and the default home is [`crate::default_home`]`(state_dir, name)`.
    ///
    /// # Errors
    /// As [`SandboxPolicy::from_config`].
    pub fn for_upstream(
        upstream: &UpstreamConfig,
        env: impl IntoIterator<Item = (OsString, OsString)>,
        base_dir: &Path,
        state_dir: &Path,
    ) -> Result<Self, SandboxError> {
        let mut config = upstream.sandbox.clone().unwrap_or_default();
        let from_base = |p: &PathBuf| if p.starts_with("~") { p.clone() } else { base_dir.join(p) };
        config.read = config.read.iter().map(from_base).collect();
        config.write = config.write.iter().map(from_base).collect();
        config.home = config.home.as_ref().map(from_base);
        let mut policy = SandboxPolicy::from_config(&config, &crate::default_home(state_dir, &upstream.name), env)?;
        policy.cwd = upstream.cwd.as_ref().map(|cwd| base_dir.join(cwd));
        Ok(policy)
    }
}

/// Parses a lowercase or uppercase hex SHA-256 digest.
///
/// # Errors
/// [`SandboxError::InvalidPin`] when it is not 64 hex digits.
pub fn parse_sha256(hex_digest: &str) -> Result<[u8; 32], SandboxError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_digest.trim(), &mut out)
        .map_err(|_| SandboxError::InvalidPin { value: hex_digest.to_owned() })?;
    Ok(out)
}

fn expand_tilde(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_owned(),
    }
}
