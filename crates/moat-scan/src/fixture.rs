//! A fixture machine for tests and benchmarks: a home directory (Linux layout) holding a
//! configuration of every supported client, a project directory, and a system root with a
//! managed Claude Code file. Not part of the stable API.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fixture machine under a temporary directory, removed on drop.
#[derive(Debug)]
pub struct FixtureHome {
    pub root: PathBuf,
    pub home: PathBuf,
    pub project: PathBuf,
    pub system_root: PathBuf,
    /// A `moat.toml` (for `--config`); not at a discovered location.
    pub moat_toml: PathBuf,
}

impl Drop for FixtureHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The fake GitHub token written into the fixture (looks real to the secret rules).
pub const FIXTURE_GITHUB_TOKEN: &str = "ghp_Zk3vR9qLm2XwT8bN4cYp6HsJ1dFgA5eU7oKi";

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}

impl FixtureHome {
    /// Creates a new fixture with a unique name under the system temp directory.
    ///
    /// # Errors
    ///
    /// When the files cannot be written.
    pub fn create(label: &str) -> std::io::Result<FixtureHome> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("moat-scan-fixture-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let home = root.join("home");
        let project = root.join("work").join("app");
        let system_root = root.join("sys");
        let fx = FixtureHome { moat_toml: root.join("moat.toml"), root, home, project, system_root };
        fx.populate()?;
        Ok(fx)
    }

    fn populate(&self) -> std::io::Result<()> {
        let h = &self.home;
        let p = &self.project;
        let project = p.to_string_lossy().replace('\\', "/");
        // Claude Desktop: an unpinned npx package.
        write(
            &h.join(".config/Claude/claude_desktop_config.json"),
            r#"{
  "mcpServers": {
    "filesystem": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/Documents"]
    }
  }
}
"#,
        )?;
        // Claude Code: user server with an inline token, a local (per-project) server.
        write(
            &h.join(".claude.json"),
            &format!(
                r#"{{
  "numStartups": 12,
  "mcpServers": {{
    "github": {{
      "type": "stdio",
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-github@2025.4.8"],
      "env": {{ "GITHUB_PERSONAL_ACCESS_TOKEN": "{FIXTURE_GITHUB_TOKEN}" }}
    }}
  }},
  "projects": {{
    "{project}": {{
      "allowedTools": [],
      "mcpServers": {{
        "sentry": {{ "type": "http", "url": "https://mcp.sentry.dev/mcp" }}
      }}
    }}
  }}
}}
"#
            ),
        )?;
        write(
            &p.join(".mcp.json"),
            r#"{ "mcpServers": { "db": { "command": "uvx", "args": ["mcp-server-sqlite", "--db-path", "app.db"] } } }"#,
        )?;
        write(
            &self.system_root.join("etc/claude-code/managed-mcp.json"),
            r#"{ "mcpServers": { "company-docs": { "type": "http", "url": "https://docs.internal.example/mcp" } } }"#,
        )?;
        // Cursor: user and project, with comments and trailing commas.
        write(
            &h.join(".cursor/mcp.json"),
            r#"{
  // added by the team wiki
  "mcpServers": {
    "browser": { "command": "npx", "args": ["-y", "@playwright/mcp@latest"], },
  },
}
"#,
        )?;
        write(
            &p.join(".cursor/mcp.json"),
            r#"{ "mcpServers": { "linear": { "url": "https://mcp.linear.app/sse" } } }"#,
        )?;
        // VS Code: user mcp.json, settings.json, workspace mcp.json.
        write(
            &h.join(".config/Code/User/mcp.json"),
            r#"{ "servers": { "memory": { "type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory@2025.9.25"] } }, "inputs": [] }"#,
        )?;
        write(
            &h.join(".config/Code/User/settings.json"),
            r#"{ "editor.fontSize": 13, "mcp": { "servers": { "time": { "command": "uvx", "args": ["mcp-server-time==2025.9.25"] } } } }"#,
        )?;
        write(
            &p.join(".vscode/mcp.json"),
            r#"{ "servers": { "fetch": { "type": "stdio", "command": "docker", "args": ["run", "-i", "--rm", "mcp/fetch:latest"] } } }"#,
        )?;
        // Windsurf: a plain-http remote.
        write(
            &h.join(".codeium/windsurf/mcp_config.json"),
            r#"{ "mcpServers": { "wiki": { "serverUrl": "http://wiki.corp.example:8080/mcp" } } }"#,
        )?;
        // Gemini CLI: Streamable HTTP with an API key header.
        write(
            &h.join(".gemini/settings.json"),
            r#"{ "theme": "Default", "mcpServers": { "search": { "httpUrl": "https://search.example/mcp", "headers": { "X-API-Key": "sk-9f8e7d6c5b4a39281706f5e4d3c2b1a0" } } } }"#,
        )?;
        // Codex: TOML, a container image by mutable tag.
        write(
            &h.join(".codex/config.toml"),
            "model = \"o4-mini\"\n\n[mcp_servers.github-docker]\ncommand = \"docker\"\nargs = [\"run\", \"-i\", \"--rm\", \"ghcr.io/github/github-mcp-server:v0.9\"]\n",
        )?;
        // Zed.
        write(
            &h.join(".config/zed/settings.json"),
            r#"{ "context_servers": { "postgres": { "command": "npx", "args": ["-y", "@modelcontextprotocol/server-postgres@0.6.2", "postgres://app:hunter2pass@db.local/app"], "env": {} } } }"#,
        )?;
        // Cline: a download piped to a shell.
        write(
            &h.join(".config/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json"),
            r#"{ "mcpServers": { "installer": { "command": "bash", "args": ["-c", "curl -fsSL https://get.example.dev/mcp.sh | sh"], "disabled": false, "alwaysAllow": [] } } }"#,
        )?;
        // Continue: YAML list.
        write(
            &h.join(".continue/config.yaml"),
            "name: Local Assistant\nversion: 1.0.0\nschema: v1\nmcpServers:\n  - name: git\n    command: uvx\n    args:\n      - mcp-server-git\n",
        )?;
        // Kiro, Amazon Q, Copilot CLI.
        write(
            &h.join(".kiro/settings/mcp.json"),
            r#"{ "mcpServers": { "aws-docs": { "command": "uvx", "args": ["awslabs.aws-documentation-mcp-server@1.1.2"], "disabled": false } } }"#,
        )?;
        write(
            &h.join(".aws/amazonq/mcp.json"),
            r#"{ "mcpServers": { "cdk": { "command": "uvx", "args": ["awslabs.cdk-mcp-server@latest"] } } }"#,
        )?;
        write(
            &h.join(".copilot/mcp-config.json"),
            r#"{ "mcpServers": { "context7": { "type": "http", "url": "https://mcp.context7.com/mcp", "tools": ["*"] } } }"#,
        )?;
        // OpenCode: user (remote) and project (local, disabled).
        write(
            &h.join(".config/opencode/opencode.json"),
            r#"{ "$schema": "https://opencode.ai/config.json", "mcp": { "jira": { "type": "remote", "url": "https://jira.example/mcp", "enabled": true } } }"#,
        )?;
        write(
            &p.join("opencode.json"),
            r#"{ "mcp": { "scratch": { "type": "local", "command": ["bunx", "scratch-mcp"], "enabled": false } } }"#,
        )?;
        // Moat's own config, read only with --config.
        write(
            &self.moat_toml,
            "[[upstream]]\nname = \"demo\"\ncommand = [\"moat\", \"demo-server\"]\n\n[[upstream]]\nname = \"remote\"\nurl = \"https://mcp.example.com/mcp\"\n",
        )?;
        Ok(())
    }

    /// Scan options for a static scan of this fixture (no registry, ignores, pins or live checks).
    pub fn static_scan_options(&self) -> crate::ScanOptions {
        crate::ScanOptions {
            discover: self.discover_options(),
            registry: None,
            ignore_rules: Vec::new(),
            ignore_files: Vec::new(),
            live: None,
            pins: None,
            write_pins: false,
        }
    }

    /// Discovery options for this fixture (Linux layout).
    pub fn discover_options(&self) -> crate::DiscoverOptions {
        crate::DiscoverOptions {
            roots: crate::Roots {
                home: self.home.clone(),
                os: crate::Os::Linux,
                appdata: None,
                system_root: Some(self.system_root.clone()),
            },
            projects: Vec::new(),
            explicit: Vec::new(),
        }
    }
}
