//! A tiny stdio MCP server written in POSIX sh, for live-scan tests: it dumps its environment
//! to a file, sleeps, then answers `initialize` and `tools/list` (one tool whose name and
//! description come from its arguments) and refuses everything else.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use moat_scan::{Client, Scope, ServerEntry, Transport};

pub const SERVER_SH: &str = r#"#!/bin/sh
# usage: server.sh ENV_OUT SLEEP_SECS TOOL_NAME TOOL_DESCRIPTION  ($TOOL_NAME, $TOOL_DESC override)
env > "$1"
echo "sh-server starting" >&2
sleep "$2"
while IFS= read -r line; do
  id=$(printf '%s\n' "$line" | sed -n 's/.*"id":\([0-9][0-9]*\).*/\1/p')
  case "$line" in
    *'"method":"initialize"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"sh-server","version":"1.0.0"},"instructions":"A test server."}}\n' "$id" ;;
    *'"method":"tools/list"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"%s","description":"%s","inputSchema":{"type":"object"}}]}}\n' "$id" "${TOOL_NAME:-$3}" "${TOOL_DESC:-$4}" ;;
    *'"id":'*)
      printf '{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}\n' "$id" ;;
  esac
done
"#;

/// A scratch directory with the server script in it.
pub struct Scratch {
    pub dir: PathBuf,
    pub script: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn scratch(label: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("moat-scan-live-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("server.sh");
    std::fs::write(&script, SERVER_SH).unwrap();
    Scratch { dir, script }
}

/// A stdio server definition that runs the script.
pub fn sh_server(name: &str, script: &Path, env_out: &Path, sleep: &str, tool: &str, desc: &str) -> ServerEntry {
    ServerEntry {
        client: Client::Cursor,
        scope: Scope::User,
        file: PathBuf::from("/fixture/.cursor/mcp.json"),
        line: Some(1),
        project: None,
        name: name.to_owned(),
        transport: Transport::Stdio,
        command: Some("/bin/sh".to_owned()),
        args: vec![
            script.display().to_string(),
            env_out.display().to_string(),
            sleep.to_owned(),
            tool.to_owned(),
            desc.to_owned(),
        ],
        env: BTreeMap::new(),
        cwd: None,
        url: None,
        headers: BTreeMap::new(),
        disabled: false,
        pointer: format!("/mcpServers/{name}"),
    }
}
