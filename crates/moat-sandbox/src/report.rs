//! Which protections are in force for one child: logged by the gateway when it starts an upstream.

use std::path::PathBuf;

use serde::Serialize;

/// One protection and whether it is in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Protection {
    /// `filesystem`, `network`, `seccomp`, `scopes`, `no_new_privs`, `rlimits`, `environment`,
    /// `sha256`.
    pub name: &'static str,
    /// In force, not asked for, or missing (best-effort start on a kernel that lacks it).
    pub state: ProtectionState,
    /// What exactly is enforced, or why it is missing.
    pub detail: String,
}

/// Whether a protection is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtectionState {
    /// Applied to the child.
    Enforced,
    /// The policy does not ask for it (e.g. `network = true`).
    NotRequested,
    /// Asked for, but this kernel cannot enforce it, and the policy is best-effort.
    Missing,
}

/// What [`crate::prepare`] set up for one child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxReport {
    /// The executable that will run, resolved via the policy's `PATH`.
    pub executable: PathBuf,
    /// Its SHA-256 (hex), when the policy pins one (then it matched).
    pub sha256: Option<String>,
    /// Landlock ABI of the kernel, if it has Landlock.
    pub landlock_abi: Option<i32>,
    /// Paths the child may read (system, executable, configured), after resolution.
    pub read: Vec<PathBuf>,
    /// Paths the child may write (home and configured).
    pub write: Vec<PathBuf>,
    /// Every protection, in force or not.
    pub protections: Vec<Protection>,
}

impl SandboxReport {
    /// The state of the protection named `name`, if the report has it.
    pub fn state(&self, name: &str) -> Option<ProtectionState> {
        self.protections.iter().find(|p| p.name == name).map(|p| p.state)
    }

    /// Protections asked for that this kernel does not enforce (empty unless best-effort).
    pub fn missing(&self) -> impl Iterator<Item = &Protection> {
        self.protections.iter().filter(|p| p.state == ProtectionState::Missing)
    }

    /// True when every protection asked for is in force.
    pub fn is_complete(&self) -> bool {
        self.missing().next().is_none()
    }
}

impl std::fmt::Display for SandboxReport {
    /// One line for the start log: `executable; name=state, ...`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`", self.executable.display())?;
        for p in &self.protections {
            let state = match p.state {
                ProtectionState::Enforced => "enforced",
                ProtectionState::NotRequested => "off",
                ProtectionState::Missing => "MISSING",
            };
            write!(f, "; {}={state} ({})", p.name, p.detail)?;
        }
        Ok(())
    }
}
