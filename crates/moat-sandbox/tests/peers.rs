//! End to end with real MCP servers started through `moat_sandbox::prepare`, driven over their
//! stdin/stdout with a minimal JSON-RPC exchange (initialize, notifications/initialized,
//! tools/call):
//!
//! - `@modelcontextprotocol/server-filesystem` (npm; `MOAT_NODE_MODULES`, else
//!   `tests/peers/node/node_modules`), given the whole temporary root as its own allowed
//!   directory, so that a refusal can only come from the kernel (Landlock): EACCES;
//! - a Python server on the official `mcp` SDK (`tests/fixtures/net_probe_server.py`, run with
//!   `MOAT_PYTHON_MCP2`), which cannot connect to a loopback listener when the network is denied.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use moat_sandbox::{prepare, Network, SandboxPolicy};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// A started MCP server and its pipes.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    fn start(program: &Path, args: &[&str], policy: &SandboxPolicy) -> Peer {
        let (mut cmd, report) = prepare(program, args, policy).expect("prepare");
        eprintln!("sandbox: {report}");
        assert!(report.is_complete(), "{report}");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Peer { child, stdin, lines }
    }

    async fn send(&mut self, msg: Value) {
        let mut line = serde_json::to_vec(&msg).unwrap();
        line.push(b'\n');
        self.stdin.write_all(&line).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Sends a request and returns the response with the same id (skipping notifications).
    async fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no answer to `{method}` in 30 s"))
                .unwrap()
                .unwrap_or_else(|| panic!("server closed stdout before answering `{method}`"));
            let Ok(msg) = serde_json::from_str::<Value>(&line) else { continue };
            if msg.get("id") == Some(&json!(id)) {
                return msg;
            }
        }
    }

    async fn initialize(&mut self) {
        let init = self
            .request(
                1,
                "initialize",
                json!({
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "moat-sandbox-test", "version": "0"}
                }),
            )
            .await;
        assert!(init.get("result").is_some(), "initialize failed: {init}");
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    }

    /// Calls a tool; returns (is_error, concatenated text content).
    async fn call(&mut self, id: u64, tool: &str, arguments: Value) -> (bool, String) {
        let resp = self.request(id, "tools/call", json!({"name": tool, "arguments": arguments})).await;
        let result = resp.get("result").unwrap_or_else(|| panic!("tools/call failed: {resp}"));
        let is_error = result.get("isError").and_then(Value::as_bool).unwrap_or(false);
        let text = result["content"]
            .as_array()
            .map(|items| items.iter().filter_map(|c| c["text"].as_str()).collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
        (is_error, text)
    }

    async fn stop(mut self) {
        drop(self.stdin);
        let _ = self.child.kill().await;
    }
}

fn node_modules() -> Option<PathBuf> {
    let candidates = std::env::var_os("MOAT_NODE_MODULES")
        .map(PathBuf::from)
        .into_iter()
        .flat_map(|p| [p.clone(), p.join("node_modules")])
        .chain([workspace_root().join("tests/peers/node/node_modules")]);
    candidates
        .into_iter()
        .find(|p| p.join("@modelcontextprotocol/server-filesystem/dist/index.js").is_file())
        .and_then(|p| p.canonicalize().ok())
}

fn node() -> Option<PathBuf> {
    ["MOAT_NODE22", "MOAT_NODE"]
        .iter()
        .find_map(|v| std::env::var_os(v).map(PathBuf::from))
        .or_else(|| moat_sandbox::resolve_executable("node".as_ref(), moat_sandbox::DEFAULT_PATH.as_ref()).ok())
}

#[tokio::test]
async fn server_filesystem_reads_allowed_dir_and_kernel_refuses_secret_dir() {
    const TEST: &str = "server_filesystem_reads_allowed_dir_and_kernel_refuses_secret_dir";
    if landlock_or_skip(TEST).is_none() {
        return;
    }
    let (Some(modules), Some(node)) = (node_modules(), node()) else {
        return missing_peer(TEST, "@modelcontextprotocol/server-filesystem and node (MOAT_NODE_MODULES, MOAT_NODE22)");
    };
    let tmp = TempDir::new("e2e-fs");
    let root = tmp.path().canonicalize().unwrap();
    let allowed = root.join("workspace");
    let ssh = root.join(".ssh");
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(allowed.join("hello.txt"), "hello from the allowed dir").unwrap();
    std::fs::write(ssh.join("id_ed25519"), "-----BEGIN OPENSSH PRIVATE KEY-----").unwrap();

    let mut policy = policy(&root);
    policy.read = vec![modules.clone(), allowed.clone()];
    let script = modules.join("@modelcontextprotocol/server-filesystem/dist/index.js");
    // The server's own allowed-directory check gets the whole root: it would allow `.ssh`.
    let mut peer = Peer::start(&node, &[script.to_str().unwrap(), root.to_str().unwrap()], &policy);
    peer.initialize().await;

    let (is_error, text) = peer.call(2, "read_file", json!({"path": allowed.join("hello.txt")})).await;
    assert!(!is_error, "reading the allowed dir failed: {text}");
    assert_eq!(text, "hello from the allowed dir");

    let (is_error, text) = peer.call(3, "read_file", json!({"path": ssh.join("id_ed25519")})).await;
    assert!(is_error, "the secret was readable: {text}");
    assert!(!text.contains("PRIVATE KEY"));
    assert!(text.contains("EACCES") && text.contains("permission denied"), "not a kernel refusal: {text}");
    peer.stop().await;
}

#[tokio::test]
async fn python_sdk_server_with_network_denied_cannot_reach_loopback() {
    const TEST: &str = "python_sdk_server_with_network_denied_cannot_reach_loopback";
    let Some(python) = std::env::var_os("MOAT_PYTHON_MCP2").map(PathBuf::from) else {
        return missing_peer(TEST, "the mcp 2.x Python SDK (MOAT_PYTHON_MCP2)");
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").canonicalize().unwrap();
    let server = fixtures.join("net_probe_server.py");

    for (network, expect_connected) in [(Network::Allow, true), (Network::Deny, false)] {
        let tmp = TempDir::new("e2e-py");
        let mut policy = policy(tmp.path());
        policy.read = vec![fixtures.clone()];
        policy.network = network.clone();
        let mut peer = Peer::start(&python, &[server.to_str().unwrap()], &policy);
        peer.initialize().await;
        let (is_error, text) = peer.call(2, "connect", json!({"host": "127.0.0.1", "port": port})).await;
        assert!(!is_error, "tool failed: {text}");
        if expect_connected {
            assert_eq!(text, "connected", "network allowed, yet: {text}");
        } else {
            assert!(text.starts_with("refused: PermissionError"), "network denied, yet: {text}");
        }
        peer.stop().await;
    }
}
