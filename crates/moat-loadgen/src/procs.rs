//! The processes under test: `moat demo-server --http` and gateways in front of it.

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::client::McpClient;

const STARTUP: Duration = Duration::from_secs(20);
/// Connections used to open idle sessions (each session is its own `initialize`).
const IDLE_OPENERS: usize = 8;

/// What a load is driven at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `moat demo-server --http`, no gateway.
    Direct,
    /// `moat gateway` with the demo server above as an HTTP upstream.
    GatewayHttp,
    /// `moat gateway` with `moat demo-server` as a stdio upstream.
    GatewayStdio,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Target::Direct => "direct",
            Target::GatewayHttp => "gateway-http",
            Target::GatewayStdio => "gateway-stdio",
        })
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "direct" => Ok(Target::Direct),
            "gateway-http" => Ok(Target::GatewayHttp),
            "gateway-stdio" => Ok(Target::GatewayStdio),
            _ => Err(format!("unknown target `{s}`; expected direct, gateway-http or gateway-stdio")),
        }
    }
}

/// A child in its own process group, killed with its group when dropped.
pub struct Proc {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, addr: SocketAddr, log: PathBuf, name: &str) -> Result<Proc> {
        let file = std::fs::File::create(&log).with_context(|| format!("cannot create `{}`", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file).process_group(0);
        let child = cmd.spawn().with_context(|| format!("cannot start {name}"))?;
        let mut p = Proc { child, addr, log };
        p.wait_listening(name)?;
        Ok(p)
    }

    fn wait_listening(&mut self, name: &str) -> Result<()> {
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{name} exited ({status}) before listening; log: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("{name} did not listen on {} in {STARTUP:?}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmRSS in /proc/{}/status", self.pid()))
    }

    fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                // The group may still hold a stdio upstream that outlived its parent.
                let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The demo server and the gateways of one run.
pub struct Processes {
    moat: PathBuf,
    dir: PathBuf,
    // INVARIANT: gateways are declared (so dropped, so killed) before their upstream.
    gateway_http: Option<Proc>,
    gateway_stdio: Option<Proc>,
    direct: Proc,
}

impl Processes {
    pub async fn start(moat: &Path, targets: &[Target], demo_preload: Option<&Path>) -> Result<Processes> {
        let dir = std::env::temp_dir().join(format!("moat-loadgen-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let addr = free_addr()?;
        let mut cmd = Command::new(moat);
        cmd.args(["demo-server", "--http", &addr.to_string()]);
        if let Some(lib) = demo_preload {
            cmd.env("LD_PRELOAD", std::fs::canonicalize(lib)?);
        }
        let direct = Proc::spawn(cmd, addr, dir.join("demo-server.log"), "moat demo-server --http")?;
        let mut p = Processes { moat: moat.to_path_buf(), dir, direct, gateway_http: None, gateway_stdio: None };
        if targets.contains(&Target::GatewayHttp) {
            p.gateway_http = Some(p.gateway(Target::GatewayHttp, "gateway-http")?);
        }
        if targets.contains(&Target::GatewayStdio) {
            p.gateway_stdio = Some(p.gateway(Target::GatewayStdio, "gateway-stdio")?);
        }
        Ok(p)
    }

    /// Starts a gateway in front of the demo server (`GatewayHttp`) or of a stdio demo server.
    fn gateway(&self, kind: Target, label: &str) -> Result<Proc> {
        let addr = free_addr()?;
        let upstream = match kind {
            Target::GatewayStdio => format!("command = [{}, \"demo-server\"]", toml_str(&self.moat.to_string_lossy())),
            _ => format!("url = {}", toml_str(&format!("http://{}/mcp", self.direct.addr))),
        };
        // The admin listener (metrics, health) on a free port, so that gateways never clash.
        let config = format!("[gateway]\nlisten = \"{addr}\"\npath = \"/mcp\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n[[upstream]]\nname = \"demo\"\n{upstream}\n");
        let path = self.dir.join(format!("{label}.toml"));
        std::fs::write(&path, config)?;
        let mut cmd = Command::new(&self.moat);
        cmd.arg("gateway").arg("--config").arg(&path);
        Proc::spawn(cmd, addr, self.dir.join(format!("{label}.log")), &format!("moat gateway ({label})"))
    }

    pub fn addr(&self, target: Target) -> Result<SocketAddr> {
        match target {
            Target::Direct => Ok(self.direct.addr),
            Target::GatewayHttp => {
                self.gateway_http.as_ref().map(|p| p.addr).ok_or_else(|| anyhow!("no HTTP-upstream gateway"))
            }
            Target::GatewayStdio => {
                self.gateway_stdio.as_ref().map(|p| p.addr).ok_or_else(|| anyhow!("no stdio-upstream gateway"))
            }
        }
    }

    /// Resident memory of a fresh gateway of each kind, before and after `n` idle sessions.
    pub async fn idle_rss(&self, n: usize) -> Result<Vec<IdleRss>> {
        let mut out = Vec::new();
        for (kind, label) in [(Target::GatewayHttp, "idle-http"), (Target::GatewayStdio, "idle-stdio")] {
            let gw = self.gateway(kind, label)?;
            // One session first, so the baseline includes the upstream connection.
            let mut first = McpClient::connect(gw.addr, "/mcp").await?;
            first.initialize().await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let before = gw.rss_kib()?;
            let mut tasks = Vec::new();
            for k in 0..IDLE_OPENERS {
                let addr = gw.addr;
                let count = n / IDLE_OPENERS + usize::from(k < n % IDLE_OPENERS);
                tasks.push(tokio::spawn(async move {
                    let mut opened = 0usize;
                    // A client keeps one connection and opens session after session on it.
                    let mut c = McpClient::connect(addr, "/mcp").await?;
                    for _ in 0..count {
                        c.reset_session();
                        c.initialize().await?;
                        opened += 1;
                    }
                    anyhow::Ok(opened)
                }));
            }
            let mut opened = 0;
            for t in tasks {
                opened += t.await.context("a session opener failed")??;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = gw.rss_kib()?;
            out.push(IdleRss { target: kind, sessions: opened, before_kib: before, after_kib: after });
        }
        Ok(out)
    }

    pub fn stop(self) {
        let dir = self.dir.clone();
        drop(self);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Resident memory of a gateway with idle sessions.
#[derive(Debug, Clone)]
pub struct IdleRss {
    pub target: Target,
    pub sessions: usize,
    pub before_kib: u64,
    pub after_kib: u64,
}

fn free_addr() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

fn toml_str(s: &str) -> String {
    // A TOML basic string is a JSON string for the characters a path can hold here.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}
