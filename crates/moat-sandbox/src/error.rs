//! Why a sandboxed upstream could not be prepared.

use std::path::PathBuf;

/// Why [`crate::prepare`] refused to build the command. Every variant fails closed: nothing was
/// started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The program is not an executable file, or not found in the policy's `PATH`.
    #[error("executable `{program}` was not found in the sandbox PATH `{path}`")]
    NotFound { program: String, path: String },
    /// The executable could not be read (for hashing) or resolved.
    #[error("cannot read executable `{}`: {source}", path.display())]
    Executable { path: PathBuf, source: std::io::Error },
    /// The executable's digest differs from the pinned one (OWASP MCP04, supply chain).
    #[error("executable `{}` does not match its pinned sha256: expected {expected}, found {actual}", path.display())]
    HashMismatch { path: PathBuf, expected: String, actual: String },
    /// `sandbox.sha256` is not a SHA-256 digest.
    #[error("sandbox sha256 `{value}` is not 64 hexadecimal digits")]
    InvalidPin { value: String },
    /// A network allow-list entry is not `host:port`.
    #[error("network allow-list entry `{entry}` is not \"host:port\"")]
    InvalidHostPort { entry: String },
    /// A configured `read`/`write`/`cwd` path does not exist or cannot be opened.
    #[error("sandbox path `{}` cannot be used: {source}", path.display())]
    Path { path: PathBuf, source: std::io::Error },
    /// The private home directory could not be created.
    #[error("cannot create the sandbox home directory `{}`: {source}", path.display())]
    Home { path: PathBuf, source: std::io::Error },
    /// The kernel lacks a protection the policy asks for, and `best_effort` is off.
    #[error("this kernel cannot enforce {protection}: {reason}")]
    Unsupported { protection: &'static str, reason: String },
    /// Building the Landlock ruleset failed.
    #[error("cannot build the landlock ruleset: {0}")]
    Landlock(String),
    /// Building the seccomp filter failed.
    #[error("cannot build the seccomp filter: {0}")]
    Seccomp(String),
}

impl SandboxError {
    /// Advice for the operator, printed on its own line after the error.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            SandboxError::Unsupported { .. } => Some(
                "run `moat sandbox check` to see what this kernel supports; set `sandbox.best_effort = true` to start without the missing protection",
            ),
            SandboxError::HashMismatch { .. } => Some(
                "the executable changed since it was pinned: review it, then update `sandbox.sha256`",
            ),
            SandboxError::NotFound { .. } => {
                Some("give an absolute path, or add the executable's directory to the upstream's `env.PATH`")
            }
            _ => None,
        }
    }
}
