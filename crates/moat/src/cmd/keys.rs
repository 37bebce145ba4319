//! `moat keys create|list|revoke`: manage API keys for `[auth] mode = "api_key"`.
//!
//! Keys are kept (as salted hashes only) in a JSON file, the one `[auth] api_keys_file` names;
//! a running gateway re-reads it when it changes, so a revoked key stops working at once.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use moat_auth::apikey::{default_key_file, generate, FileKeyStore, KeyStore, NewKey};

/// Manage API keys (`[auth] mode = "api_key"`).
#[derive(Debug, Parser)]
pub struct Args {
    /// API key file; must be the gateway's `[auth] api_keys_file`. Default:
    /// `<data dir>/moat/api-keys.json`.
    #[arg(long, global = true, env = "MOAT_API_KEYS_FILE", value_name = "PATH")]
    file: Option<PathBuf>,

    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print it once on stdout (only its hash is stored).
    Create(CreateArgs),
    /// List keys (id, subject, roles, state); never shows a secret.
    List(ListArgs),
    /// Revoke a key by id; it never authenticates again.
    Revoke(RevokeArgs),
}

#[derive(Debug, Parser)]
struct CreateArgs {
    /// Subject of the principal the key authenticates as (e.g. `ci-bot`).
    #[arg(long)]
    subject: String,
    /// A role of the principal (repeatable), seen by policies as `principal.roles`.
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// A group of the principal (repeatable), seen by policies as `principal.groups`.
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// A scope of the principal (repeatable), for `required_scopes` and per-tool scopes.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// Free text shown by `moat keys list`.
    #[arg(long, default_value = "")]
    description: String,
}

#[derive(Debug, Parser)]
struct ListArgs {
    /// Print JSON (one array) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Parser)]
struct RevokeArgs {
    /// The key id (the 16 hex digits after `moat_`, as `moat keys list` shows).
    id: String,
}

pub fn run(args: Args) -> ExitCode {
    let Some(path) = args.file.or_else(default_key_file) else {
        eprintln!("error: no data directory on this system; pass `--file`");
        return ExitCode::from(2);
    };
    let store = FileKeyStore::new(path);
    match args.command {
        KeysCommand::Create(c) => {
            let new = NewKey {
                subject: c.subject,
                roles: c.roles,
                groups: c.groups,
                scopes: c.scopes,
                description: c.description,
            };
            let (record, plain) = match generate(new) {
                Ok(v) => v,
                Err(e) => return fail(&e),
            };
            let id = record.id.clone();
            if let Err(e) = store.insert(record) {
                return fail(&e);
            }
            println!("{}", plain.reveal());
            eprintln!("created api key `{id}` in `{}`; it is shown only this once", store.path().display());
            ExitCode::SUCCESS
        }
        KeysCommand::List(l) => {
            let records = match store.list() {
                Ok(r) => r,
                Err(e) => return fail(&e),
            };
            if l.json {
                match serde_json::to_string_pretty(&records) {
                    Ok(s) => println!("{s}"),
                    Err(e) => return fail(&e),
                }
                return ExitCode::SUCCESS;
            }
            println!("{:<16}  {:<20}  {:<8}  {:<24}  DESCRIPTION", "ID", "SUBJECT", "STATE", "ROLES");
            for r in records {
                let state = if r.revoked_at.is_some() { "revoked" } else { "active" };
                println!("{:<16}  {:<20}  {:<8}  {:<24}  {}", r.id, r.subject, state, r.roles.join(","), r.description);
            }
            ExitCode::SUCCESS
        }
        KeysCommand::Revoke(r) => match store.revoke(&r.id) {
            Ok(true) => {
                eprintln!("revoked api key `{}`", r.id);
                ExitCode::SUCCESS
            }
            Ok(false) => {
                eprintln!("api key `{}` was already revoked", r.id);
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}
