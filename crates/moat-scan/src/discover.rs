//! Discovery: which configuration files exist, and which servers they define. Nothing is
//! executed and nothing is written.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::clients::{self, Format, Location, Roots};
use crate::model::{Client, ConfigFile, Scope, ServerEntry};
use crate::parse;

/// What to look at.
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    pub roots: Roots,
    /// Project directories to look in for project-scoped files (`.mcp.json`,
    /// `.vscode/mcp.json`, ...). The projects listed in `~/.claude.json` are added to these.
    pub projects: Vec<PathBuf>,
    /// Files named with `--config`. When any are given, only these are read.
    pub explicit: Vec<PathBuf>,
}

/// Everything discovery found.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Every file that exists at a known location (or was named), with its outcome.
    pub files: Vec<ConfigFile>,
    pub servers: Vec<ServerEntry>,
}

/// Finds and parses every configuration file. Files that do not exist are skipped; files that
/// exist but cannot be parsed are listed in [`Inventory::files`] with their error.
pub fn discover(opts: &DiscoverOptions) -> Inventory {
    let mut inv = Inventory::default();
    let mut seen = HashSet::new();
    if !opts.explicit.is_empty() {
        for path in &opts.explicit {
            let (client, format) = clients::client_from_path(path);
            let loc = Location { client, scope: Scope::Explicit, path: path.clone(), format, project: None };
            read_into(&loc, &mut inv, &mut seen, None);
        }
        return inv;
    }

    let mut projects: Vec<PathBuf> = opts.projects.clone();
    for loc in clients::user_locations(&opts.roots) {
        let found = if loc.format == Format::ClaudeCodeUser { Some(&mut projects) } else { None };
        read_into(&loc, &mut inv, &mut seen, found);
    }

    let mut seen_projects = HashSet::new();
    for project in projects {
        if !seen_projects.insert(project.clone()) || !project.is_dir() {
            continue;
        }
        for loc in clients::project_locations(&project) {
            read_into(&loc, &mut inv, &mut seen, None);
        }
        read_continue_dir(&project, &mut inv, &mut seen);
    }
    inv
}

fn read_into(
    loc: &Location,
    inv: &mut Inventory,
    seen: &mut HashSet<PathBuf>,
    projects_out: Option<&mut Vec<PathBuf>>,
) {
    if !seen.insert(loc.path.clone()) {
        return;
    }
    let text = match read_text(&loc.path) {
        Ok(Some(text)) => text,
        Ok(None) => return,
        Err(e) => {
            inv.files.push(file_entry(loc, 0, Some(e.to_string())));
            return;
        }
    };
    match parse::parse_document(loc, &text) {
        Ok(doc) => {
            if let Some(out) = projects_out {
                out.extend(parse::claude_code_projects(&doc));
            }
            let servers = parse::extract_servers(loc, &text, &doc);
            inv.files.push(file_entry(loc, servers.len(), None));
            inv.servers.extend(servers);
        }
        Err(e) => inv.files.push(file_entry(loc, 0, Some(e.to_string()))),
    }
}

/// `Ok(None)` when the file does not exist (the usual case for most locations).
fn read_text(path: &Path) -> Result<Option<String>, parse::ParseError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(parse::ParseError::Io { path: path.to_path_buf(), source }),
    };
    if !meta.is_file() {
        return Ok(None);
    }
    if meta.len() > parse::MAX_CONFIG_BYTES {
        return Err(parse::ParseError::TooLarge { path: path.to_path_buf() });
    }
    std::fs::read_to_string(path).map(Some).map_err(|source| parse::ParseError::Io { path: path.to_path_buf(), source })
}

fn read_continue_dir(project: &Path, inv: &mut Inventory, seen: &mut HashSet<PathBuf>) {
    let dir = clients::continue_project_dir(project);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")))
        .collect();
    paths.sort();
    for path in paths {
        let loc = Location {
            client: Client::Continue,
            scope: Scope::Project,
            path,
            format: Format::Continue,
            project: Some(project.to_path_buf()),
        };
        read_into(&loc, inv, seen, None);
    }
}

fn file_entry(loc: &Location, servers: usize, error: Option<String>) -> ConfigFile {
    ConfigFile { client: loc.client, scope: loc.scope, path: loc.path.clone(), servers, error }
}
