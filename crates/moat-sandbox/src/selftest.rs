//! A live check that the kernel enforces what it advertises: start a sandboxed `/bin/sh` that
//! tries to read a file outside its allowed paths. Used by `moat sandbox check`.

use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;

use crate::{prepare, SandboxPolicy};

/// Outcome of [`self_test`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelfTest {
    /// A child started under the full default policy.
    pub started: bool,
    /// It was refused a file outside its allowed paths (Landlock enforced).
    pub filesystem_denied: bool,
    /// Why the test could not run or failed, when it did.
    pub error: Option<String>,
}

/// Starts `/bin/sh` under the default policy (home in a fresh temporary directory) and asks it
/// to read a file it must not see.
pub async fn self_test() -> SelfTest {
    let dir = std::env::temp_dir().join(format!("moat-sandbox-selftest-{}", std::process::id()));
    let result = run(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok((started, denied)) => SelfTest { started, filesystem_denied: denied, error: None },
        Err(e) => SelfTest { started: false, filesystem_denied: false, error: Some(e) },
    }
}

async fn run(dir: &std::path::Path) -> Result<(bool, bool), String> {
    let secret = dir.join("outside").join("secret");
    if let Some(parent) = secret.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::write(&secret, "secret").map_err(|e| e.to_string())?;
    let policy = SandboxPolicy::new(dir.join("home"));
    let script = format!("cat '{}' >/dev/null 2>&1 && echo readable || echo denied", secret.display());
    let (mut cmd, _) = prepare("/bin/sh", ["-c", script.as_str()], &policy).map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let child = cmd.spawn().map_err(|e| format!("cannot start a sandboxed child: {e}"))?;
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| "the sandboxed child did not finish in 30 s".to_owned())?
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok((true, stdout.trim() == "denied"))
}
