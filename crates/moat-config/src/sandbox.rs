//! `[upstream.sandbox]`: how a stdio upstream is confined (Linux: rlimits, Landlock, seccomp).
//!
//! Every key is optional and every default is the safe one: a stdio upstream with no `sandbox`
//! table at all gets a cleared environment, its own private home directory, no network, read
//! access only to the system directories and its own executable's directories, write access only
//! to its home, the rlimits below, and the seccomp deny-list. `docs/sandbox.md` explains the
//! threat each key answers; `moat-sandbox` turns this table into the policy it enforces.

use std::path::PathBuf;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Default memory limit (`RLIMIT_DATA`: heap and private writable mappings), in MiB.
pub const DEFAULT_MEMORY_MB: u64 = 1024;
/// Default CPU-time limit (`RLIMIT_CPU`), in seconds of CPU (not wall clock) over the life of
/// the process; the gateway restarts an upstream that reaches it.
pub const DEFAULT_CPU_SECONDS: u64 = 3600;
/// Default limit on open file descriptors (`RLIMIT_NOFILE`).
pub const DEFAULT_OPEN_FILES: u64 = 1024;
/// Default limit on processes and threads (`RLIMIT_NPROC`). Linux counts every process of the
/// user, not only the upstream's, so this is a fork-bomb stop, not an exact budget.
pub const DEFAULT_PROCESSES: u64 = 4096;

/// The per-upstream `sandbox` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// Extra paths the upstream may read (files or directories, recursively). Default: none
    /// beyond the system directories and the executable's own directories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read: Vec<PathBuf>,
    /// Paths the upstream may read and write (recursively). Default: none beyond its home.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write: Vec<PathBuf>,
    /// Network: `false` (the default) denies every TCP/IP socket, `true` allows all, and a list of
    /// `"host:port"` allows TCP connections to those ports only.
    #[serde(default)]
    pub network: NetworkConfig,
    /// Start the upstream even when the kernel lacks a configured protection (the log names what
    /// is missing). Default `false`: a missing protection refuses the start.
    #[serde(default)]
    pub best_effort: bool,
    /// Lowercase hex SHA-256 of the executable; a mismatch refuses the start. Default: not pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Memory limit in MiB (`RLIMIT_DATA`: heap and private writable mappings). Not `RLIMIT_AS`
    /// by default: V8 sizes its heap from the address-space limit and Go and the JVM reserve far
    /// more address space than they use, so a tight `RLIMIT_AS` breaks them.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// Address-space limit in MiB (`RLIMIT_AS`), which also bounds shared mappings. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_space_mb: Option<u64>,
    /// CPU-time limit in seconds (`RLIMIT_CPU`).
    #[serde(default = "default_cpu_seconds")]
    pub cpu_seconds: u64,
    /// Open file descriptor limit (`RLIMIT_NOFILE`).
    #[serde(default = "default_open_files")]
    pub open_files: u64,
    /// Process and thread limit (`RLIMIT_NPROC`, counted per user by Linux).
    #[serde(default = "default_processes")]
    pub processes: u64,
    /// The upstream's private `HOME` (created mode 0700, writable). Default: a directory named
    /// after the upstream under Moat's state directory, chosen by the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            read: Vec::new(),
            write: Vec::new(),
            network: NetworkConfig::default(),
            best_effort: false,
            sha256: None,
            memory_mb: DEFAULT_MEMORY_MB,
            address_space_mb: None,
            cpu_seconds: DEFAULT_CPU_SECONDS,
            open_files: DEFAULT_OPEN_FILES,
            processes: DEFAULT_PROCESSES,
            home: None,
        }
    }
}

fn default_memory_mb() -> u64 {
    DEFAULT_MEMORY_MB
}
fn default_cpu_seconds() -> u64 {
    DEFAULT_CPU_SECONDS
}
fn default_open_files() -> u64 {
    DEFAULT_OPEN_FILES
}
fn default_processes() -> u64 {
    DEFAULT_PROCESSES
}

/// `network = false | true | ["host:port", ...]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetworkConfig {
    /// `false`: no TCP/IP at all.
    #[default]
    Deny,
    /// `true`: unrestricted.
    Allow,
    /// A list of `"host:port"` entries, kept verbatim; `moat-sandbox` parses and checks them.
    AllowList(Vec<String>),
}

impl Serialize for NetworkConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            NetworkConfig::Deny => s.serialize_bool(false),
            NetworkConfig::Allow => s.serialize_bool(true),
            NetworkConfig::AllowList(list) => list.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for NetworkConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NetworkVisitor;

        impl<'de> Visitor<'de> for NetworkVisitor {
            type Value = NetworkConfig;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`false`, `true` or a list of \"host:port\" strings")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(if v { NetworkConfig::Allow } else { NetworkConfig::Deny })
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut list = Vec::new();
                while let Some(entry) = seq.next_element::<String>()? {
                    list.push(entry);
                }
                Ok(NetworkConfig::AllowList(list))
            }
        }

        d.deserialize_any(NetworkVisitor)
    }
}
