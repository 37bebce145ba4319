//! Turning one configuration file into [`ServerEntry`]s.
//!
//! Every format is first read into a `serde_json::Value` (JSON with comments and trailing
//! commas, TOML or YAML), then the servers are picked out of it by layout. Parsing is
//! lenient about fields it does not know, and strict about nothing: a client config is
//! someone else's file, and a scanner that gives up on an unknown key finds nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::clients::{Format, Location};
use crate::model::{Client, Scope, ServerEntry, Transport};

/// Files larger than this are not client configs; reading them would only cost time.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// Why a configuration file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("cannot read `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("`{path}` is larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("`{path}` is not valid {format}: {message}")]
    Syntax { path: PathBuf, format: &'static str, message: String },
}

/// Reads `loc.path` and returns the server definitions in it.
///
/// # Errors
///
/// When the file cannot be read or is not valid JSON(C), TOML or YAML.
pub fn parse_location(loc: &Location) -> Result<Vec<ServerEntry>, ParseError> {
    let meta = std::fs::metadata(&loc.path).map_err(|source| ParseError::Io { path: loc.path.clone(), source })?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ParseError::TooLarge { path: loc.path.clone() });
    }
    let text =
        std::fs::read_to_string(&loc.path).map_err(|source| ParseError::Io { path: loc.path.clone(), source })?;
    parse_text(loc, &text)
}

/// Parses `text` as the contents of `loc.path`.
///
/// # Errors
///
/// When `text` is not valid for the file's syntax.
pub fn parse_text(loc: &Location, text: &str) -> Result<Vec<ServerEntry>, ParseError> {
    let doc = parse_document(loc, text)?;
    Ok(extract_servers(loc, text, &doc))
}

/// Parses `text` into a JSON value, whatever its syntax.
///
/// # Errors
///
/// When `text` is not valid for the file's syntax.
pub fn parse_document(loc: &Location, text: &str) -> Result<Value, ParseError> {
    Syntax::of(&loc.path, loc.format, text).parse(&loc.path, text)
}

/// The project directories named in a Claude Code `~/.claude.json` document.
pub fn claude_code_projects(doc: &Value) -> Vec<PathBuf> {
    doc.get("projects").and_then(Value::as_object).map(|m| m.keys().map(PathBuf::from).collect()).unwrap_or_default()
}

/// Picks the server definitions out of a parsed document.
pub fn extract_servers(loc: &Location, text: &str, doc: &Value) -> Vec<ServerEntry> {
    let syntax = Syntax::of(&loc.path, loc.format, text);
    let format = match loc.format {
        Format::Auto => guess_format(doc, syntax),
        other => other,
    };
    let mut out = Vec::new();
    let ctx = Ctx { loc, text, syntax };
    match format {
        Format::McpServers | Format::Auto => {
            ctx.map_at(doc, &["mcpServers"], "", loc.scope, None, &mut out);
        }
        Format::ClaudeCodeUser => {
            ctx.map_at(doc, &["mcpServers"], "", Scope::User, None, &mut out);
            if let Some(projects) = doc.get("projects").and_then(Value::as_object) {
                for (project, body) in projects {
                    let prefix = format!("/projects/{}", escape_pointer(project));
                    ctx.map_at(body, &["mcpServers"], &prefix, Scope::Local, Some(PathBuf::from(project)), &mut out);
                }
            }
        }
        Format::VscodeMcp => ctx.map_at(doc, &["servers"], "", loc.scope, None, &mut out),
        Format::VscodeSettings => {
            if doc.get("mcp.servers").is_some() {
                ctx.map_at(doc, &["mcp.servers"], "", loc.scope, None, &mut out);
            } else {
                ctx.map_at(doc, &["mcp", "servers"], "", loc.scope, None, &mut out);
            }
        }
        Format::Zed => ctx.map_at(doc, &["context_servers"], "", loc.scope, None, &mut out),
        Format::CodexToml => ctx.map_at(doc, &["mcp_servers"], "", loc.scope, None, &mut out),
        Format::Opencode => ctx.map_at(doc, &["mcp"], "", loc.scope, None, &mut out),
        Format::Continue => ctx.continue_servers(doc, &mut out),
        Format::MoatToml => ctx.moat_upstreams(doc, &mut out),
    }
    out
}

/// The surface syntax of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Json,
    Toml,
    Yaml,
}

impl Syntax {
    fn of(path: &Path, format: Format, text: &str) -> Syntax {
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        match (format, ext.as_str()) {
            (Format::CodexToml | Format::MoatToml, _) | (_, "toml") => Syntax::Toml,
            (_, "yaml" | "yml") => Syntax::Yaml,
            (_, "json" | "jsonc" | "json5") => Syntax::Json,
            _ => {
                let first = text.trim_start().chars().next();
                if matches!(first, Some('{') | Some('/')) {
                    Syntax::Json
                } else if text.lines().any(|l| l.trim_start().starts_with('[')) {
                    Syntax::Toml
                } else {
                    Syntax::Yaml
                }
            }
        }
    }

    fn parse(self, path: &Path, text: &str) -> Result<Value, ParseError> {
        let syntax_err = |format, message: String| ParseError::Syntax { path: path.to_path_buf(), format, message };
        match self {
            Syntax::Json => {
                let options = jsonc_parser::ParseOptions::default();
                jsonc_parser::parse_to_serde_value::<Value>(text, &options)
                    .map_err(|e| syntax_err("JSON", e.to_string()))
            }
            Syntax::Toml => toml::from_str::<toml::Value>(text)
                .map_err(|e| syntax_err("TOML", e.message().to_owned()))
                .and_then(|v| serde_json::to_value(v).map_err(|e| syntax_err("TOML", e.to_string()))),
            Syntax::Yaml => serde_yaml_ng::from_str::<Value>(text).map_err(|e| syntax_err("YAML", e.to_string())),
        }
    }
}

fn guess_format(doc: &Value, syntax: Syntax) -> Format {
    let has = |key: &str| doc.get(key).is_some();
    if syntax == Syntax::Toml {
        if has("upstream") {
            return Format::MoatToml;
        }
        return Format::CodexToml;
    }
    if has("projects") {
        Format::ClaudeCodeUser
    } else if has("mcpServers") && doc.get("mcpServers").is_some_and(Value::is_array) {
        Format::Continue
    } else if has("mcpServers") {
        Format::McpServers
    } else if has("servers") {
        Format::VscodeMcp
    } else if has("context_servers") {
        Format::Zed
    } else if has("mcp.servers") || doc.pointer("/mcp/servers").is_some() {
        Format::VscodeSettings
    } else if has("mcp") {
        Format::Opencode
    } else if has("upstream") {
        Format::MoatToml
    } else {
        Format::McpServers
    }
}

struct Ctx<'a> {
    loc: &'a Location,
    text: &'a str,
    syntax: Syntax,
}

impl Ctx<'_> {
    /// Reads the server map found by following `path` from `doc`.
    fn map_at(
        &self,
        doc: &Value,
        path: &[&str],
        pointer_prefix: &str,
        scope: Scope,
        project: Option<PathBuf>,
        out: &mut Vec<ServerEntry>,
    ) {
        let mut node = doc;
        let mut pointer = pointer_prefix.to_owned();
        for key in path {
            match node.get(*key) {
                Some(next) => node = next,
                None => return,
            }
            pointer.push('/');
            pointer.push_str(&escape_pointer(key));
        }
        let Some(map) = node.as_object() else {
            return;
        };
        // Search for each definition's line after the start of its enclosing section, so that
        // a name used in two projects points at the right one.
        let section_line = pointer_prefix
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .and_then(|project_key| find_json_key(self.text, &unescape_pointer(project_key), 0));
        for (name, def) in map {
            let Some(obj) = def.as_object() else {
                continue;
            };
            let entry_pointer = format!("{pointer}/{}", escape_pointer(name));
            let line = self.line_of(name, section_line.unwrap_or(0));
            out.push(self.entry(name, obj, scope, project.clone(), entry_pointer, line));
        }
    }

    fn line_of(&self, name: &str, after: usize) -> Option<usize> {
        match self.syntax {
            Syntax::Json => find_json_key(self.text, name, after),
            Syntax::Toml => find_toml_table(self.text, name),
            Syntax::Yaml => find_yaml_name(self.text, name),
        }
    }

    fn entry(
        &self,
        name: &str,
        obj: &Map<String, Value>,
        scope: Scope,
        project: Option<PathBuf>,
        pointer: String,
        line: Option<usize>,
    ) -> ServerEntry {
        let mut command = None;
        let mut args = Vec::new();
        let mut env = string_map(obj.get("env"));
        match obj.get("command") {
            Some(Value::String(s)) => command = Some(s.clone()),
            // OpenCode and Moat: the whole command line as an array.
            Some(Value::Array(items)) => {
                let mut items = items.iter().map(value_to_string);
                command = items.next();
                args.extend(items);
            }
            // Older Zed: `"command": {"path": ..., "args": [...], "env": {...}}`.
            Some(Value::Object(inner)) => {
                command = inner.get("path").map(value_to_string);
                args.extend(string_list(inner.get("args")));
                env.extend(string_map(inner.get("env")));
            }
            _ => {}
        }
        args.extend(string_list(obj.get("args")));
        env.extend(string_map(obj.get("environment")));

        let http_url = obj.get("httpUrl").map(value_to_string);
        let url = http_url
            .clone()
            .or_else(|| obj.get("url").map(value_to_string))
            .or_else(|| obj.get("serverUrl").map(value_to_string));
        let declared = obj
            .get("type")
            .or_else(|| obj.get("transport"))
            .and_then(|t| t.as_str().or_else(|| t.get("type").and_then(Value::as_str)))
            .map(str::to_ascii_lowercase);
        let transport = match declared.as_deref() {
            Some("sse") => Transport::Sse,
            Some("http" | "streamable-http" | "streamablehttp" | "streamable_http" | "remote") => Transport::Http,
            Some("stdio" | "local") => Transport::Stdio,
            _ if command.is_some() => Transport::Stdio,
            _ if http_url.is_some() => Transport::Http,
            // Gemini CLI's `url` key means SSE; elsewhere a bare URL ending in /sse usually does.
            _ if self.loc.client == Client::GeminiCli => Transport::Sse,
            _ if url.as_deref().is_some_and(|u| u.trim_end_matches('/').ends_with("/sse")) => Transport::Sse,
            _ if url.is_some() => Transport::Http,
            _ => Transport::Stdio,
        };
        // Continue nests stdio settings under `transport`.
        if command.is_none() {
            if let Some(t) = obj.get("transport").and_then(Value::as_object) {
                command = t.get("command").map(value_to_string);
                args.extend(string_list(t.get("args")));
                env.extend(string_map(t.get("env")));
            }
        }

        let mut headers = string_map(obj.get("headers"));
        headers.extend(string_map(obj.get("http_headers")));
        headers.extend(string_map(obj.get("requestInit").and_then(|r| r.get("headers"))));

        let disabled = obj.get("disabled").and_then(Value::as_bool) == Some(true)
            || obj.get("enabled").and_then(Value::as_bool) == Some(false);

        ServerEntry {
            client: self.loc.client,
            scope,
            file: self.loc.path.clone(),
            line,
            project: project.or_else(|| self.loc.project.clone()),
            name: name.to_owned(),
            transport,
            command,
            args,
            env,
            cwd: obj.get("cwd").map(value_to_string),
            url,
            headers,
            disabled,
            pointer,
        }
    }

    /// Continue: `mcpServers` is a list of `{name, command, ...}` in `config.yaml`, or
    /// `experimental.modelContextProtocolServers` in the older `config.json`. A file under
    /// `.continue/mcpServers/` may also hold a single server at its top level.
    fn continue_servers(&self, doc: &Value, out: &mut Vec<ServerEntry>) {
        let lists = [
            ("/mcpServers", doc.get("mcpServers")),
            ("/experimental/modelContextProtocolServers", doc.pointer("/experimental/modelContextProtocolServers")),
        ];
        for (pointer, list) in lists {
            match list {
                Some(Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        let Some(obj) = item.as_object() else {
                            continue;
                        };
                        let name = obj.get("name").map(value_to_string).unwrap_or_else(|| format!("server-{i}"));
                        let line = self.line_of(&name, 0);
                        out.push(self.entry(&name, obj, self.loc.scope, None, format!("{pointer}/{i}"), line));
                    }
                }
                Some(Value::Object(_)) => {
                    self.map_at(doc, &["mcpServers"], "", self.loc.scope, None, out);
                }
                _ => {}
            }
        }
        if out.is_empty() {
            if let Some(obj) = doc.as_object() {
                if obj.contains_key("command") || obj.contains_key("url") {
                    let name = obj.get("name").map(value_to_string).unwrap_or_else(|| file_stem(&self.loc.path));
                    out.push(self.entry(&name, obj, self.loc.scope, None, String::new(), Some(1)));
                }
            }
        }
    }

    /// Moat's own `moat.toml`: `[[upstream]] name = "..", command = [..] | url = ".."`.
    fn moat_upstreams(&self, doc: &Value, out: &mut Vec<ServerEntry>) {
        let Some(list) = doc.get("upstream").and_then(Value::as_array) else {
            return;
        };
        let mut search_from = 0;
        for (i, item) in list.iter().enumerate() {
            let Some(obj) = item.as_object() else {
                continue;
            };
            let name = obj.get("name").map(value_to_string).unwrap_or_else(|| format!("upstream-{i}"));
            let line = find_toml_array_table(self.text, "upstream", search_from);
            if let Some(l) = line {
                search_from = l;
            }
            out.push(self.entry(&name, obj, self.loc.scope, None, format!("/upstream/{i}"), line));
        }
    }
}

fn value_to_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items.iter().map(value_to_string).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    match v {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), value_to_string(v))).collect(),
        _ => BTreeMap::new(),
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// RFC 6901 escaping of one reference token.
pub fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn unescape_pointer(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// 1-based line of the first `"key":` at or after line `after` (1-based; 0 = start).
fn find_json_key(text: &str, key: &str, after: usize) -> Option<usize> {
    let quoted = serde_json::to_string(key).ok()?;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if lineno < after {
            continue;
        }
        let mut rest = line;
        while let Some(pos) = rest.find(&quoted) {
            let tail = rest.get(pos + quoted.len()..).unwrap_or("");
            if tail.trim_start().starts_with(':') {
                return Some(lineno);
            }
            rest = tail;
        }
    }
    None
}

/// 1-based line of `[mcp_servers.<name>]` (or any table header ending in `.name`).
fn find_toml_table(text: &str, name: &str) -> Option<usize> {
    let bare = format!(".{name}]");
    let quoted = format!(".\"{name}\"]");
    text.lines()
        .position(|l| {
            let l = l.trim();
            l.starts_with('[') && (l.ends_with(&bare) || l.ends_with(&quoted))
        })
        .map(|i| i + 1)
}

fn find_toml_array_table(text: &str, name: &str, after: usize) -> Option<usize> {
    let header = format!("[[{name}]]");
    text.lines().enumerate().skip(after).find(|(_, l)| l.trim() == header).map(|(i, _)| i + 1)
}

fn find_yaml_name(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches("- ").trim();
            l.strip_prefix("name:").map(|v| v.trim().trim_matches(['"', '\'']) == name).unwrap_or(false)
                || l.strip_suffix(':').map(|k| k.trim_matches(['"', '\'']) == name) == Some(true)
        })
        .map(|i| i + 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn loc(client: Client, path: &str, format: Format) -> Location {
        Location { client, scope: Scope::User, path: PathBuf::from(path), format, project: None }
    }

    #[test]
    fn jsonc_with_comments_and_trailing_commas_is_read() {
        let text = r#"{
  // my servers
  "mcpServers": {
    "fs": { "command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem@2025.8.21", "/tmp",], },
  },
}"#;
        let out = parse_text(&loc(Client::Cursor, "/h/.cursor/mcp.json", Format::McpServers), text).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "fs");
        assert_eq!(out[0].command.as_deref(), Some("npx"));
        assert_eq!(out[0].args.len(), 3);
        assert_eq!(out[0].line, Some(4));
        assert_eq!(out[0].pointer, "/mcpServers/fs");
    }

    #[test]
    fn claude_code_user_file_yields_user_and_local_servers() {
        let text = r#"{
  "mcpServers": {"a": {"command": "x"}},
  "projects": {
    "/p/one": {"mcpServers": {"a": {"type": "http", "url": "https://e.example/mcp"}}}
  }
}"#;
        let out = parse_text(&loc(Client::ClaudeCode, "/h/.claude.json", Format::ClaudeCodeUser), text).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].scope, Scope::Local);
        assert_eq!(out[1].project.as_deref(), Some(Path::new("/p/one")));
        assert_eq!(out[1].transport, Transport::Http);
        assert_eq!(out[1].pointer, "/projects/~1p~1one/mcpServers/a");
        assert_eq!(out[1].line, Some(4));
    }

    #[test]
    fn codex_toml_tables_are_servers() {
        let text =
            "model = \"o3\"\n[mcp_servers.docs]\ncommand = \"uvx\"\nargs = [\"mcp-docs\"]\nenv = { API_KEY = \"x\" }\n";
        let out = parse_text(&loc(Client::Codex, "/h/.codex/config.toml", Format::CodexToml), text).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].line, Some(2));
        assert_eq!(out[0].env.get("API_KEY").map(String::as_str), Some("x"));
    }

    #[test]
    fn opencode_command_array_is_split() {
        let text = r#"{"mcp": {"l": {"type": "local", "command": ["bunx", "pkg"], "environment": {"A": "b"}, "enabled": false}}}"#;
        let out = parse_text(&loc(Client::Opencode, "/p/opencode.json", Format::Opencode), text).unwrap();
        assert_eq!(out[0].command.as_deref(), Some("bunx"));
        assert_eq!(out[0].args, ["pkg"]);
        assert!(out[0].disabled);
        assert_eq!(out[0].env.len(), 1);
    }

    #[test]
    fn continue_yaml_list_is_read() {
        let text = "name: cfg\nmcpServers:\n  - name: sqlite\n    command: uvx\n    args: [mcp-server-sqlite]\n";
        let out = parse_text(&loc(Client::Continue, "/h/.continue/config.yaml", Format::Continue), text).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "sqlite");
        assert_eq!(out[0].line, Some(3));
    }

    #[test]
    fn continue_server_files_may_hold_one_server_or_a_copied_mcp_json() {
        let single = parse_text(
            &loc(Client::Continue, "/p/.continue/mcpServers/playwright.json", Format::Continue),
            r#"{"command": "npx", "args": ["@playwright/mcp@latest"]}"#,
        )
        .unwrap();
        assert_eq!(single.len(), 1);
        assert_eq!(single[0].name, "playwright");
        let copied = parse_text(
            &loc(Client::Continue, "/p/.continue/mcpServers/team.json", Format::Continue),
            r#"{"mcpServers": {"a": {"command": "x"}, "b": {"type": "streamable-http", "url": "https://b.example/mcp"}}}"#,
        )
        .unwrap();
        assert_eq!(copied.len(), 2);
        assert_eq!(copied[1].transport, Transport::Http);
    }

    #[test]
    fn zed_legacy_nested_command_is_read() {
        let text = r#"{"context_servers": {"z": {"command": {"path": "node", "args": ["s.js"], "env": {}}}}}"#;
        let out = parse_text(&loc(Client::Zed, "/h/.config/zed/settings.json", Format::Zed), text).unwrap();
        assert_eq!(out[0].command.as_deref(), Some("node"));
        assert_eq!(out[0].args, ["s.js"]);
    }

    #[test]
    fn gemini_url_means_sse_and_http_url_means_http() {
        let text =
            r#"{"mcpServers": {"a": {"url": "https://x.example/sse"}, "b": {"httpUrl": "https://x.example/mcp"}}}"#;
        let out = parse_text(&loc(Client::GeminiCli, "/h/.gemini/settings.json", Format::McpServers), text).unwrap();
        assert_eq!(out[0].transport, Transport::Sse);
        assert_eq!(out[1].transport, Transport::Http);
    }

    #[test]
    fn broken_json_is_an_error_naming_the_file() {
        let err = parse_text(&loc(Client::Cursor, "/h/.cursor/mcp.json", Format::McpServers), "{\"mcpServers\": ")
            .unwrap_err();
        assert!(err.to_string().contains("/h/.cursor/mcp.json"), "{err}");
    }

    #[test]
    fn auto_format_recognises_moat_toml() {
        let text = "[[upstream]]\nname = \"demo\"\ncommand = [\"moat\", \"demo-server\"]\n\n[[upstream]]\nname = \"r\"\nurl = \"http://10.0.0.1/mcp\"\n";
        let out = parse_text(&loc(Client::Other, "/x/servers.toml", Format::Auto), text).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].args, ["demo-server"]);
        assert_eq!(out[1].line, Some(5));
        assert_eq!(out[1].transport, Transport::Http);
    }
}
