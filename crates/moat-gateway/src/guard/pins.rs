//! Pinning (MCP03: rug pulls and poisoned tools).
//!
//! Every definition an upstream lists is hashed ([`moat_detect::canonical::pin_hash`]) and
//! pinned per upstream identity. A state machine of pins (stored in the [`Store`]):
//! unseen → pinned (or quarantined, under `require_approval` or when its metadata is
//! poisoned) → quarantined on any change → approved by an operator (`moat pins approve`).
//! Only pinned and approved definitions are served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use moat_config::guards::{Pinning, ToolMetadataGuard};
use moat_detect::canonical::{canonical_json, pin_hash, pinned_definition, PinDomain};
use moat_detect::lockfile::LockFile;
use moat_detect::{Detector, Finding};
use moat_store::{PinKey, PinKind, PinRecord, PinState, Store, UnixMillis};
use serde_json::Value;

use super::severity;

/// Which list a definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKindPin {
    Tool,
    Prompt,
    Template,
}

impl ListKindPin {
    fn domain(self) -> PinDomain {
        match self {
            ListKindPin::Tool => PinDomain::Tool,
            ListKindPin::Prompt => PinDomain::Prompt,
            ListKindPin::Template => PinDomain::ResourceTemplate,
        }
    }
    fn kind(self) -> PinKind {
        match self {
            ListKindPin::Tool => PinKind::Tool,
            ListKindPin::Prompt => PinKind::Prompt,
            ListKindPin::Template => PinKind::ResourceTemplate,
        }
    }
    fn name_key(self) -> &'static str {
        match self {
            ListKindPin::Template => "uriTemplate",
            _ => "name",
        }
    }
    fn noun(self) -> &'static str {
        match self {
            ListKindPin::Tool => "tool",
            ListKindPin::Prompt => "prompt",
            ListKindPin::Template => "resource template",
        }
    }
}

/// Why a definition is withheld.
#[derive(Debug, Clone)]
pub struct Quarantine {
    pub reason: String,
    pub rules: Vec<String>,
}

/// What [`PinGuard::filter`] lets through, and what it newly withheld (name, why).
#[derive(Debug, Default)]
pub struct Filtered {
    pub served: Vec<Value>,
    pub newly_quarantined: Vec<(String, Quarantine)>,
}

/// The pinning guard.
pub struct PinGuard {
    store: Arc<dyn Store>,
    detector: Detector,
    config: ToolMetadataGuard,
    /// (upstream name, kind noun, name) → why it is withheld; for error messages.
    quarantined: Mutex<HashMap<(String, &'static str, String), Quarantine>>,
    /// Upstream name → whether its instructions may be served.
    instructions_ok: Mutex<HashMap<String, bool>>,
    /// The enforced lock file, when `[guards] lock_file` is set.
    lock: Option<LockFile>,
}

impl PinGuard {
    pub fn new(store: Arc<dyn Store>, detector: Detector, config: ToolMetadataGuard, lock: Option<LockFile>) -> Self {
        PinGuard {
            store,
            detector,
            config,
            quarantined: Mutex::new(HashMap::new()),
            instructions_ok: Mutex::new(HashMap::new()),
            lock,
        }
    }

    /// With a lock file, a definition must be in it with this very hash.
    fn lock_violation(&self, identity: &str, domain: PinDomain, name: &str, hash: &str) -> Option<Quarantine> {
        let lock = self.lock.as_ref()?;
        match lock.expected_hash(identity, domain, name) {
            Some(h) if h == hash => None,
            Some(_) => Some(Quarantine {
                reason:
                    "its definition differs from the one in the enforced lock file; re-export the lock after review"
                        .into(),
                rules: vec!["MOAT-PIN-003".into()],
            }),
            None => Some(Quarantine {
                reason: "it is not in the enforced lock file".into(),
                rules: vec!["MOAT-PIN-003".into()],
            }),
        }
    }

    /// Pins every item of a list; returns the ones that may be served, and the definitions
    /// withheld now that were not withheld (for the same rules) before, so that each
    /// quarantine is audited once rather than on every list.
    pub async fn filter(
        &self,
        identity: &str,
        upstream: &str,
        pinning: Pinning,
        kind: ListKindPin,
        items: Vec<Value>,
    ) -> Filtered {
        let mut out = Filtered { served: Vec::with_capacity(items.len()), newly_quarantined: Vec::new() };
        for item in items {
            let Some(name) = item.get(kind.name_key()).and_then(Value::as_str).map(str::to_string) else { continue };
            match self.check(identity, pinning, kind, &name, &item).await {
                Ok(()) => {
                    if let Ok(mut q) = self.quarantined.lock() {
                        q.remove(&(upstream.to_string(), kind.noun(), name));
                    }
                    out.served.push(item);
                }
                Err(q) => {
                    tracing::warn!(target: "moat::decision", decision = "quarantine", upstream, kind = kind.noun(), name = %name, rules = ?q.rules, reason = %q.reason);
                    if let Ok(mut map) = self.quarantined.lock() {
                        let previous = map.insert((upstream.to_string(), kind.noun(), name.clone()), q.clone());
                        if previous.is_none_or(|p| p.rules != q.rules) {
                            out.newly_quarantined.push((name, q));
                        }
                    }
                }
            }
        }
        out
    }

    /// How many definitions are withheld now.
    pub fn quarantined_count(&self) -> usize {
        self.quarantined.lock().map_or(0, |q| q.len())
    }

    /// Why `name` of `upstream` is withheld, if it is.
    pub fn quarantine_reason(&self, upstream: &str, kind: ListKindPin, name: &str) -> Option<Quarantine> {
        self.quarantined.lock().ok()?.get(&(upstream.to_string(), kind.noun(), name.to_string())).cloned()
    }

    async fn check(
        &self,
        identity: &str,
        pinning: Pinning,
        kind: ListKindPin,
        name: &str,
        item: &Value,
    ) -> Result<(), Quarantine> {
        let domain = kind.domain();
        let hash = pin_hash(domain, item);
        if let Some(q) = self.lock_violation(identity, domain, name, &hash) {
            return Err(q);
        }
        let key = PinKey::new(identity, kind.kind(), name);
        let now = UnixMillis::now();
        let poisoned = self.poisoned(kind, item);
        let stored = self.store.get_pin(&key).await.map_err(|e| store_down(&e))?;
        let record = match stored {
            None => {
                let state = if pinning == Pinning::RequireApproval || poisoned.is_some() {
                    PinState::Quarantined
                } else {
                    PinState::Pinned
                };
                let rec = PinRecord {
                    key,
                    state,
                    definition: canonical_json(&pinned_definition(domain, item)),
                    hash,
                    trusted_definition: None,
                    trusted_hash: None,
                    first_seen: now,
                    updated: now,
                };
                self.store.put_pin(&rec).await.map_err(|e| store_down(&e))?;
                rec
            }
            Some(rec) if rec.hash == hash => rec,
            Some(rec) => {
                let trusted = rec.state != PinState::Quarantined;
                let (trusted_definition, trusted_hash) = if trusted {
                    (Some(rec.definition.clone()), Some(rec.hash.clone()))
                } else {
                    (rec.trusted_definition.clone(), rec.trusted_hash.clone())
                };
                // Back to exactly what was trusted: trusted again.
                let state = if trusted_hash.as_deref() == Some(hash.as_str()) {
                    PinState::Pinned
                } else {
                    PinState::Quarantined
                };
                let restored = state == PinState::Pinned;
                let rec = PinRecord {
                    key,
                    state,
                    definition: canonical_json(&pinned_definition(domain, item)),
                    hash,
                    trusted_definition: if restored { None } else { trusted_definition },
                    trusted_hash: if restored { None } else { trusted_hash },
                    first_seen: rec.first_seen,
                    updated: now,
                };
                self.store.put_pin(&rec).await.map_err(|e| store_down(&e))?;
                rec
            }
        };
        match record.state {
            PinState::Approved => Ok(()),
            PinState::Pinned => match poisoned {
                Some(q) => Err(q),
                None => Ok(()),
            },
            PinState::Quarantined => Err(poisoned.unwrap_or_else(|| Quarantine {
                reason: if record.trusted_hash.is_some() {
                    format!("its definition changed since it was pinned; review it with `moat pins diff` and release it with `moat pins approve --tool {name}`")
                } else {
                    format!("it awaits approval; release it with `moat pins approve --tool {name}`")
                },
                rules: vec!["MOAT-PIN-001".into()],
            })),
        }
    }

    /// Findings at or above `block_at` in a definition.
    fn poisoned(&self, kind: ListKindPin, item: &Value) -> Option<Quarantine> {
        if !self.config.enabled {
            return None;
        }
        let findings: Vec<Finding> = match kind {
            ListKindPin::Tool => self.detector.scan_tool(item),
            ListKindPin::Prompt => self.detector.scan_prompt(item),
            ListKindPin::Template => self.detector.scan_resource_template(item),
        };
        let block = severity(self.config.block_at);
        let bad: Vec<&Finding> = findings.iter().filter(|f| f.severity >= block).collect();
        let first = bad.first()?;
        Some(Quarantine {
            reason: format!("its metadata looks poisoned: {} ({})", first.message, first.rule),
            rules: bad.iter().map(|f| f.rule.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect(),
        })
    }

    /// Pins an upstream's `instructions`; whether they may be served.
    pub async fn check_instructions(&self, identity: &str, upstream: &str, pinning: Pinning, text: &str) -> bool {
        let item = Value::String(text.to_string());
        let hash = pin_hash(PinDomain::Instructions, &item);
        if self.lock_violation(identity, PinDomain::Instructions, "", &hash).is_some() {
            tracing::warn!(target: "moat::decision", decision = "quarantine", upstream, kind = "instructions", "server instructions differ from the enforced lock file");
            if let Ok(mut m) = self.instructions_ok.lock() {
                m.insert(upstream.to_string(), false);
            }
            return false;
        }
        let key = PinKey::new(identity, PinKind::Instructions, "");
        let now = UnixMillis::now();
        let poisoned = self.config.enabled && {
            let block = severity(self.config.block_at);
            self.detector.scan_server_instructions(text).iter().any(|f| f.severity >= block)
        };
        let ok = match self.store.get_pin(&key).await {
            Err(_) => false,
            Ok(Some(rec)) if rec.hash == hash => {
                rec.state == PinState::Approved || (rec.state == PinState::Pinned && !poisoned)
            }
            Ok(prev) => {
                let state = if prev.is_some() || pinning == Pinning::RequireApproval || poisoned {
                    PinState::Quarantined
                } else {
                    PinState::Pinned
                };
                let rec = PinRecord {
                    key,
                    state,
                    definition: canonical_json(&item),
                    hash,
                    trusted_definition: prev.as_ref().map(|p| p.definition.clone()),
                    trusted_hash: prev.as_ref().map(|p| p.hash.clone()),
                    first_seen: prev.as_ref().map_or(now, |p| p.first_seen),
                    updated: now,
                };
                self.store.put_pin(&rec).await.is_ok() && state == PinState::Pinned
            }
        };
        if !ok {
            tracing::warn!(target: "moat::decision", decision = "quarantine", upstream, kind = "instructions", "server instructions withheld");
        }
        if let Ok(mut m) = self.instructions_ok.lock() {
            m.insert(upstream.to_string(), ok);
        }
        ok
    }

    /// Whether an upstream's instructions were checked and may be served.
    pub fn instructions_allowed(&self, upstream: &str) -> bool {
        self.instructions_ok.lock().ok().and_then(|m| m.get(upstream).copied()).unwrap_or(false)
    }
}

fn store_down(e: &moat_store::StoreError) -> Quarantine {
    tracing::error!(error = %e, "pin store failed; withholding definitions");
    Quarantine { reason: "the pin store is unavailable".into(), rules: vec!["MOAT-PIN-002".into()] }
}
