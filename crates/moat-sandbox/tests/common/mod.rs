//! Helpers shared by the sandbox tests: temporary directories, peers, running a child.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use moat_sandbox::{prepare, KernelSupport, SandboxPolicy};

/// A directory under the system temp dir, removed on drop. Not under any path the sandbox
/// grants by default (the sandbox does not grant `/tmp`).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "moat-sandbox-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The Landlock ABI, or `None` after printing why the calling test skips.
pub fn landlock_or_skip(test: &str) -> Option<i32> {
    let ll = KernelSupport::probe().landlock;
    match ll.abi {
        Some(abi) => Some(abi),
        None => {
            eprintln!("SKIP {test}: this kernel has no Landlock ({}); the sandbox would refuse to start", ll.state);
            None
        }
    }
}

/// True when a missing peer must fail the test instead of skipping it.
pub fn peers_required() -> bool {
    std::env::var("MOAT_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Skips (prints why) or fails, per `MOAT_REQUIRE_PEERS`.
pub fn missing_peer(test: &str, what: &str) {
    if peers_required() {
        panic!("{test}: required peer missing: {what}");
    }
    eprintln!("SKIP {test}: peer missing: {what} (run scripts/test to install peers)");
}

/// A real (non-shim) CPython executable: `MOAT_PYTHON`, else whatever `python3` on PATH says
/// `sys.executable` is (pyenv shims are shell scripts that would need the whole pyenv tree).
pub fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOAT_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let out = std::process::Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().ok()?;
    let path = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A policy with its home under `dir`.
pub fn policy(dir: &Path) -> SandboxPolicy {
    SandboxPolicy::new(dir.join("home"))
}

/// Runs `program args` in the sandbox, collecting its output (60 s at most: CI machines are
/// loaded, and the CPU-limit test needs a whole CPU second).
pub async fn run(policy: &SandboxPolicy, program: &str, args: &[&str]) -> Output {
    let (mut cmd, _report) = prepare(program, args, policy).expect("prepare");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn");
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("child did not finish in 60 s")
        .expect("wait")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
