//! Where each client keeps its MCP configuration, on Linux, macOS and Windows.
//!
//! Paths are computed from a home directory and an operating system rather than read from
//! the process environment, so that tests can point discovery at a fixture home and check
//! the Windows and macOS layouts on a Linux machine. `docs/scan.md` lists every path with
//! the client documentation it comes from.

use std::path::{Path, PathBuf};

use crate::model::{Client, Scope};

/// The operating-system layout to compute paths for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Linux,
    MacOs,
    Windows,
}

impl Os {
    /// The layout of the machine Moat runs on.
    pub fn current() -> Os {
        if cfg!(target_os = "macos") {
            Os::MacOs
        } else if cfg!(windows) {
            Os::Windows
        } else {
            Os::Linux
        }
    }
}

/// How the servers are laid out inside a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON(C) with a top-level `mcpServers` map (Claude Desktop, Cursor, Windsurf, Gemini
    /// CLI, Cline, Kiro, Amazon Q, Copilot CLI, project `.mcp.json`, managed configs).
    McpServers,
    /// `~/.claude.json`: `mcpServers` plus `projects.<path>.mcpServers`.
    ClaudeCodeUser,
    /// VS Code `mcp.json`: a top-level `servers` map.
    VscodeMcp,
    /// VS Code `settings.json`: `mcp.servers` (nested or as a dotted key).
    VscodeSettings,
    /// Zed `settings.json`: `context_servers`.
    Zed,
    /// Codex `config.toml`: `[mcp_servers.<name>]`.
    CodexToml,
    /// Continue `config.yaml` / `config.json`: `mcpServers` list (or the older
    /// `experimental.modelContextProtocolServers`).
    Continue,
    /// OpenCode `opencode.json(c)`: `mcp` map with `type: local|remote`.
    Opencode,
    /// Moat's own `moat.toml`: `[[upstream]]`.
    MoatToml,
    /// A file given with `--config`: the layout is guessed from its contents.
    Auto,
}

/// One place a configuration may live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub client: Client,
    pub scope: Scope,
    pub path: PathBuf,
    pub format: Format,
    /// The project directory, for `project`-scoped files.
    pub project: Option<PathBuf>,
}

/// The directories that user and machine-wide paths are computed from.
#[derive(Debug, Clone)]
pub struct Roots {
    pub home: PathBuf,
    pub os: Os,
    /// Windows `%APPDATA%`; defaults to `<home>\AppData\Roaming`.
    pub appdata: Option<PathBuf>,
    /// Prefix for machine-wide paths (`/etc/...`, `C:\Program Files\...`); `None` means the
    /// real filesystem root. Tests point it at a fixture directory.
    pub system_root: Option<PathBuf>,
}

impl Roots {
    fn appdata(&self) -> PathBuf {
        self.appdata.clone().unwrap_or_else(|| self.home.join("AppData").join("Roaming"))
    }

    /// The per-OS application-config directory (`~/.config`, `~/Library/Application Support`,
    /// `%APPDATA%`).
    fn app_config(&self) -> PathBuf {
        match self.os {
            Os::Linux => self.home.join(".config"),
            Os::MacOs => self.home.join("Library").join("Application Support"),
            Os::Windows => self.appdata(),
        }
    }

    fn system(&self, absolute: &str) -> PathBuf {
        match &self.system_root {
            None => PathBuf::from(absolute),
            Some(root) => {
                // Drop the leading `/` or drive prefix (`C:\\`) so the path nests under the root.
                let relative = match absolute.split_once(":\\") {
                    Some((_drive, rest)) => rest,
                    None => absolute.trim_start_matches('/'),
                };
                root.join(relative.replace('\\', "/"))
            }
        }
    }
}

/// Every user-level and machine-wide location for this layout.
pub fn user_locations(roots: &Roots) -> Vec<Location> {
    let home = &roots.home;
    let app = roots.app_config();
    let mut out = Vec::new();
    let mut add =
        |client, scope, path: PathBuf, format| out.push(Location { client, scope, path, format, project: None });

    // Claude Desktop.
    add(Client::ClaudeDesktop, Scope::User, app.join("Claude").join("claude_desktop_config.json"), Format::McpServers);

    // Claude Code: user file and managed (enterprise) file.
    add(Client::ClaudeCode, Scope::User, home.join(".claude.json"), Format::ClaudeCodeUser);
    let managed: &[&str] = match roots.os {
        Os::Linux => &["/etc/claude-code/managed-mcp.json"],
        Os::MacOs => &["/Library/Application Support/ClaudeCode/managed-mcp.json"],
        Os::Windows => {
            &["C:\\Program Files\\ClaudeCode\\managed-mcp.json", "C:\\ProgramData\\ClaudeCode\\managed-mcp.json"]
        }
    };
    for path in managed {
        add(Client::ClaudeCode, Scope::Managed, roots.system(path), Format::McpServers);
    }

    // Cursor.
    add(Client::Cursor, Scope::User, home.join(".cursor").join("mcp.json"), Format::McpServers);

    // VS Code (stable and Insiders) user profile, and Cline inside its global storage.
    for product in ["Code", "Code - Insiders"] {
        let user = app.join(product).join("User");
        add(Client::Vscode, Scope::User, user.join("mcp.json"), Format::VscodeMcp);
        add(Client::Vscode, Scope::User, user.join("settings.json"), Format::VscodeSettings);
        add(
            Client::Cline,
            Scope::User,
            user.join("globalStorage").join("saoudrizwan.claude-dev").join("settings").join("cline_mcp_settings.json"),
            Format::McpServers,
        );
    }

    // Windsurf.
    add(
        Client::Windsurf,
        Scope::User,
        home.join(".codeium").join("windsurf").join("mcp_config.json"),
        Format::McpServers,
    );

    // Gemini CLI: user and system settings.
    add(Client::GeminiCli, Scope::User, home.join(".gemini").join("settings.json"), Format::McpServers);
    let gemini_system = match roots.os {
        Os::Linux => "/etc/gemini-cli/settings.json",
        Os::MacOs => "/Library/Application Support/GeminiCli/settings.json",
        Os::Windows => "C:\\ProgramData\\gemini-cli\\settings.json",
    };
    add(Client::GeminiCli, Scope::Managed, roots.system(gemini_system), Format::McpServers);

    // Codex.
    add(Client::Codex, Scope::User, home.join(".codex").join("config.toml"), Format::CodexToml);

    // Zed: `~/.config/zed` on Linux and macOS, `%APPDATA%\Zed` on Windows.
    let zed = match roots.os {
        Os::Windows => roots.appdata().join("Zed"),
        Os::Linux | Os::MacOs => home.join(".config").join("zed"),
    };
    add(Client::Zed, Scope::User, zed.join("settings.json"), Format::Zed);

    // Continue.
    for name in ["config.yaml", "config.json"] {
        add(Client::Continue, Scope::User, home.join(".continue").join(name), Format::Continue);
    }

    // Kiro, Amazon Q, Copilot CLI.
    add(Client::Kiro, Scope::User, home.join(".kiro").join("settings").join("mcp.json"), Format::McpServers);
    add(Client::AmazonQ, Scope::User, home.join(".aws").join("amazonq").join("mcp.json"), Format::McpServers);
    add(Client::CopilotCli, Scope::User, home.join(".copilot").join("mcp-config.json"), Format::McpServers);

    // OpenCode keeps an XDG layout on every OS.
    for name in ["opencode.json", "opencode.jsonc"] {
        add(Client::Opencode, Scope::User, home.join(".config").join("opencode").join(name), Format::Opencode);
    }

    out
}

/// Every project-level location inside `project`.
pub fn project_locations(project: &Path) -> Vec<Location> {
    let mut out = Vec::new();
    let mut add = |client, rel: &[&str], format| {
        let mut path = project.to_path_buf();
        for part in rel {
            path.push(part);
        }
        out.push(Location { client, scope: Scope::Project, path, format, project: Some(project.to_path_buf()) })
    };
    add(Client::ClaudeCode, &[".mcp.json"], Format::McpServers);
    add(Client::Cursor, &[".cursor", "mcp.json"], Format::McpServers);
    add(Client::Vscode, &[".vscode", "mcp.json"], Format::VscodeMcp);
    add(Client::Vscode, &[".vscode", "settings.json"], Format::VscodeSettings);
    add(Client::Windsurf, &[".windsurf", "mcp_config.json"], Format::McpServers);
    add(Client::GeminiCli, &[".gemini", "settings.json"], Format::McpServers);
    add(Client::Codex, &[".codex", "config.toml"], Format::CodexToml);
    add(Client::Zed, &[".zed", "settings.json"], Format::Zed);
    add(Client::Kiro, &[".kiro", "settings", "mcp.json"], Format::McpServers);
    add(Client::AmazonQ, &[".amazonq", "mcp.json"], Format::McpServers);
    add(Client::Opencode, &["opencode.json"], Format::Opencode);
    add(Client::Opencode, &["opencode.jsonc"], Format::Opencode);
    add(Client::Opencode, &[".opencode", "opencode.json"], Format::Opencode);
    add(Client::Opencode, &[".opencode", "opencode.jsonc"], Format::Opencode);
    out
}

/// Continue reads one server per file from `<project>/.continue/mcpServers/*.{yaml,yml,json}`.
pub fn continue_project_dir(project: &Path) -> PathBuf {
    project.join(".continue").join("mcpServers")
}

/// Which client a file given with `--config` belongs to, from its path.
pub fn client_from_path(path: &Path) -> (Client, Format) {
    let text = path.to_string_lossy().replace('\\', "/");
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let has = |needle: &str| text.contains(needle);
    if name == "moat.toml" {
        (Client::Moat, Format::MoatToml)
    } else if name == "claude_desktop_config.json" {
        (Client::ClaudeDesktop, Format::McpServers)
    } else if name == ".claude.json" {
        (Client::ClaudeCode, Format::ClaudeCodeUser)
    } else if name == ".mcp.json" || name == "managed-mcp.json" {
        (Client::ClaudeCode, Format::McpServers)
    } else if name == "cline_mcp_settings.json" {
        (Client::Cline, Format::McpServers)
    } else if has("/.cursor/") {
        (Client::Cursor, Format::McpServers)
    } else if name == "mcp_config.json" {
        (Client::Windsurf, Format::McpServers)
    } else if has("/.gemini/") || has("gemini-cli") {
        (Client::GeminiCli, Format::McpServers)
    } else if has("/.codex/") {
        (Client::Codex, Format::CodexToml)
    } else if has("/zed/") || has("/.zed/") || has("/Zed/") {
        (Client::Zed, Format::Zed)
    } else if has("/.continue/") {
        (Client::Continue, Format::Continue)
    } else if has("/.kiro/") {
        (Client::Kiro, Format::McpServers)
    } else if has("/amazonq/") || has("/.amazonq/") {
        (Client::AmazonQ, Format::McpServers)
    } else if name == "mcp-config.json" {
        (Client::CopilotCli, Format::McpServers)
    } else if name.starts_with("opencode.json") {
        (Client::Opencode, Format::Opencode)
    } else if has("/.vscode/") || has("/Code/User/") || has("/Code - Insiders/User/") {
        if name == "settings.json" {
            (Client::Vscode, Format::VscodeSettings)
        } else {
            (Client::Vscode, Format::VscodeMcp)
        }
    } else {
        (Client::Other, Format::Auto)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn roots(os: Os) -> Roots {
        Roots { home: PathBuf::from("/h"), os, appdata: None, system_root: Some(PathBuf::from("/sys")) }
    }

    fn path_of(locs: &[Location], client: Client, scope: Scope) -> Vec<String> {
        locs.iter()
            .filter(|l| l.client == client && l.scope == scope)
            .map(|l| l.path.to_string_lossy().replace('\\', "/"))
            .collect()
    }

    #[test]
    fn claude_desktop_path_depends_on_the_os() {
        let mac = user_locations(&roots(Os::MacOs));
        assert_eq!(
            path_of(&mac, Client::ClaudeDesktop, Scope::User),
            ["/h/Library/Application Support/Claude/claude_desktop_config.json"]
        );
        let win = user_locations(&roots(Os::Windows));
        assert_eq!(
            path_of(&win, Client::ClaudeDesktop, Scope::User),
            ["/h/AppData/Roaming/Claude/claude_desktop_config.json"]
        );
        let linux = user_locations(&roots(Os::Linux));
        assert_eq!(
            path_of(&linux, Client::ClaudeDesktop, Scope::User),
            ["/h/.config/Claude/claude_desktop_config.json"]
        );
    }

    #[test]
    fn managed_paths_nest_under_the_system_root() {
        let linux = user_locations(&roots(Os::Linux));
        assert_eq!(path_of(&linux, Client::ClaudeCode, Scope::Managed), ["/sys/etc/claude-code/managed-mcp.json"]);
        let win = user_locations(&roots(Os::Windows));
        assert_eq!(
            path_of(&win, Client::ClaudeCode, Scope::Managed),
            ["/sys/Program Files/ClaudeCode/managed-mcp.json", "/sys/ProgramData/ClaudeCode/managed-mcp.json"]
        );
    }

    #[test]
    fn cline_lives_in_vscode_global_storage() {
        let mac = user_locations(&roots(Os::MacOs));
        assert!(path_of(&mac, Client::Cline, Scope::User).contains(
            &"/h/Library/Application Support/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json"
                .to_owned()
        ));
    }

    #[test]
    fn explicit_files_are_recognised_by_path() {
        assert_eq!(client_from_path(Path::new("/x/.codex/config.toml")), (Client::Codex, Format::CodexToml));
        assert_eq!(client_from_path(Path::new("/x/moat.toml")), (Client::Moat, Format::MoatToml));
        assert_eq!(client_from_path(Path::new("/x/servers.json")), (Client::Other, Format::Auto));
    }
}
