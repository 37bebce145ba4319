//! What discovery produces: one [`ServerEntry`] per server definition found in a client
//! configuration, and one [`ConfigFile`] per file looked at.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// An MCP client (host application) whose configuration format Moat reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Client {
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
    Vscode,
    Windsurf,
    GeminiCli,
    Codex,
    Zed,
    Cline,
    Continue,
    Kiro,
    AmazonQ,
    CopilotCli,
    Opencode,
    /// Moat's own `moat.toml` (`[[upstream]]`).
    Moat,
    /// A file given with `--config` whose client could not be told from its path.
    Other,
}

impl Client {
    pub const ALL: [Client; 16] = [
        Client::ClaudeDesktop,
        Client::ClaudeCode,
        Client::Cursor,
        Client::Vscode,
        Client::Windsurf,
        Client::GeminiCli,
        Client::Codex,
        Client::Zed,
        Client::Cline,
        Client::Continue,
        Client::Kiro,
        Client::AmazonQ,
        Client::CopilotCli,
        Client::Opencode,
        Client::Moat,
        Client::Other,
    ];

    /// The stable identifier used in JSON and SARIF (`claude-desktop`).
    pub fn id(self) -> &'static str {
        match self {
            Client::ClaudeDesktop => "claude-desktop",
            Client::ClaudeCode => "claude-code",
            Client::Cursor => "cursor",
            Client::Vscode => "vscode",
            Client::Windsurf => "windsurf",
            Client::GeminiCli => "gemini-cli",
            Client::Codex => "codex",
            Client::Zed => "zed",
            Client::Cline => "cline",
            Client::Continue => "continue",
            Client::Kiro => "kiro",
            Client::AmazonQ => "amazon-q",
            Client::CopilotCli => "copilot-cli",
            Client::Opencode => "opencode",
            Client::Moat => "moat",
            Client::Other => "other",
        }
    }

    /// The product name a person recognises (`Claude Desktop`).
    pub fn display_name(self) -> &'static str {
        match self {
            Client::ClaudeDesktop => "Claude Desktop",
            Client::ClaudeCode => "Claude Code",
            Client::Cursor => "Cursor",
            Client::Vscode => "VS Code",
            Client::Windsurf => "Windsurf",
            Client::GeminiCli => "Gemini CLI",
            Client::Codex => "Codex",
            Client::Zed => "Zed",
            Client::Cline => "Cline",
            Client::Continue => "Continue",
            Client::Kiro => "Kiro",
            Client::AmazonQ => "Amazon Q",
            Client::CopilotCli => "Copilot CLI",
            Client::Opencode => "OpenCode",
            Client::Moat => "Moat",
            Client::Other => "other",
        }
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

/// Where a definition applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The user's own configuration, for every project.
    User,
    /// A file inside a project directory (usually committed with it).
    Project,
    /// A per-project entry kept in the user's configuration (Claude Code's `projects.<path>`).
    Local,
    /// A machine-wide file installed by an administrator.
    Managed,
    /// A file named with `--config`.
    Explicit,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Project => "project",
            Scope::Local => "local",
            Scope::Managed => "managed",
            Scope::Explicit => "explicit",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a client talks to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Stdio,
    /// Streamable HTTP (MCP 2025-03-26 and later).
    Http,
    /// The deprecated HTTP+SSE transport (MCP 2024-11-05).
    Sse,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Stdio => "stdio",
            Transport::Http => "http",
            Transport::Sse => "sse",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One server definition, as a client would launch or reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerEntry {
    pub client: Client,
    pub scope: Scope,
    /// The configuration file that defines it.
    pub file: PathBuf,
    /// 1-based line of the definition in `file`, when it could be found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The project directory a `project` or `local` definition belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<PathBuf>,
    /// The server's name in its configuration (its key).
    pub name: String,
    pub transport: Transport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables the client sets for the server. Values may be secrets: reports
    /// never print them (see [`ServerEntry::redacted`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// HTTP headers the client sends. Values may be secrets, as for `env`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The client has the server switched off (`disabled: true`, `enabled: false`).
    #[serde(default)]
    pub disabled: bool,
    /// JSON pointer of the definition inside the parsed file (`/mcpServers/github`).
    pub pointer: String,
}

impl ServerEntry {
    /// The command line as one string (`npx -y pkg@1.0`), or the URL for remote servers.
    pub fn target(&self) -> String {
        match (&self.command, &self.url) {
            (Some(cmd), _) => {
                let mut out = cmd.clone();
                for arg in &self.args {
                    out.push(' ');
                    out.push_str(arg);
                }
                out
            }
            (None, Some(url)) => url.clone(),
            (None, None) => String::new(),
        }
    }

    /// A copy whose `env` and `headers` values are replaced by `***`, for reports.
    pub fn redacted(&self) -> ServerEntry {
        let mut out = self.clone();
        for value in out.env.values_mut() {
            *value = "***".to_owned();
        }
        for value in out.headers.values_mut() {
            *value = "***".to_owned();
        }
        out
    }
}

/// A configuration file that discovery looked at, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigFile {
    pub client: Client,
    pub scope: Scope,
    pub path: PathBuf,
    /// How many server definitions it holds (0 when it could not be read).
    pub servers: usize,
    /// Why it could not be read or parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A [`moat_detect::Finding`] placed on the machine: which client, server and tool it is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanFinding {
    #[serde(flatten)]
    pub finding: moat_detect::Finding,
    pub client: Client,
    /// The server's name in its configuration (empty for a file-level finding).
    pub server: String,
    /// The configuration file the finding points at.
    pub file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The tool, prompt or resource, for live findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Field-level differences, for a changed definition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<FieldDiff>,
}

/// One field that differs between a pinned definition and the live one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    /// JSON pointer inside the definition (`/description`, `/inputSchema/properties/path`).
    pub pointer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<serde_json::Value>,
}

impl ScanFinding {
    /// A finding about `server`, located at its definition.
    pub fn at(server: &ServerEntry, finding: moat_detect::Finding) -> ScanFinding {
        ScanFinding {
            finding,
            client: server.client,
            server: server.name.clone(),
            file: server.file.clone(),
            line: server.line,
            tool: None,
            diff: Vec::new(),
        }
    }
}
