//! Authorization with Cedar policies.
//!
//! Policies are loaded from `[policy] files`, parsed, and validated in strict mode against
//! [`SCHEMA`]; every parse or validation problem is reported with its file and line. At run time
//! each MCP action (`call_tool`, `get_prompt`, `read_resource`, and the `list_*` actions that
//! decide what appears in lists) is evaluated against the principal, the tool/prompt/resource
//! (with its upstream as parent, and tool annotations as attributes) and a context (arguments,
//! time, source address).
//!
//! Semantics: with policy files, anything not permitted is denied, a `forbid` wins over any
//! `permit`, and an evaluation error in *any* policy denies (Cedar by itself would skip the
//! erroring policy, which would silently disable a `forbid`). With no policy files configured,
//! [`Authorizer::permit_all`] permits everything — the documented default of a gateway that
//! only authenticates.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use cedar_policy::{
    ActionConstraint, Context as CedarContext, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicyId, PolicySet, Request, ResourceConstraint, RestrictedExpression, Schema, ValidationMode,
    Validator,
};
use miette::Diagnostic;
use serde_json::{Map, Value};

use crate::principal::Principal;

/// The Cedar schema (Cedar schema syntax) policies are validated against.
pub const SCHEMA: &str = include_str!("moat.cedarschema");

/// Most argument tags put in the context; the rest are left out (a policy that needs one of
/// them sees it missing, and `hasTag` is false).
const MAX_ARGUMENT_TAGS: usize = 256;
/// Longest argument value given to Cedar (longer values are cut).
const MAX_ARGUMENT_VALUE: usize = 4096;
/// Most cached policy slices (one per action and upstream); past it, slices are built per
/// request and not kept.
const MAX_SLICES: usize = 4096;

/// An MCP action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    CallTool,
    GetPrompt,
    ReadResource,
    ListTools,
    ListPrompts,
    ListResources,
}

impl Action {
    /// The Cedar action id (`Moat::Action::"<id>"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::CallTool => "call_tool",
            Action::GetPrompt => "get_prompt",
            Action::ReadResource => "read_resource",
            Action::ListTools => "list_tools",
            Action::ListPrompts => "list_prompts",
            Action::ListResources => "list_resources",
        }
    }
}

/// MCP tool annotations as the upstream declared them (`None`: absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToolAnnotations {
    pub read_only_hint: Option<bool>,
    pub destructive_hint: Option<bool>,
    pub idempotent_hint: Option<bool>,
    pub open_world_hint: Option<bool>,
}

impl ToolAnnotations {
    /// Reads `annotations` of an MCP `Tool` object (missing or ill-typed members are absent).
    pub fn from_json(annotations: Option<&Value>) -> Self {
        let get = |k: &str| annotations.and_then(|a| a.get(k)).and_then(Value::as_bool);
        ToolAnnotations {
            read_only_hint: get("readOnlyHint"),
            destructive_hint: get("destructiveHint"),
            idempotent_hint: get("idempotentHint"),
            open_world_hint: get("openWorldHint"),
        }
    }

    /// MCP defaults: readOnly false, destructive true (when not read-only), idempotent false,
    /// openWorld true. So a tool that says nothing counts as destructive.
    fn effective(self) -> (bool, bool, bool, bool) {
        let read_only = self.read_only_hint.unwrap_or(false);
        let destructive = !read_only && self.destructive_hint.unwrap_or(true);
        let idempotent = self.idempotent_hint.unwrap_or(false);
        let open_world = self.open_world_hint.unwrap_or(true);
        (read_only, destructive, idempotent, open_world)
    }
}

/// What is acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource<'a> {
    Tool { upstream: &'a str, name: &'a str, annotations: ToolAnnotations },
    Prompt { upstream: &'a str, name: &'a str },
    Resource { upstream: &'a str, uri: &'a str },
}

/// The request's circumstances.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The call's arguments (`tools/call` `arguments`, `prompts/get` `arguments`).
    pub arguments: Option<&'a Map<String, Value>>,
    /// Now.
    pub time: SystemTime,
    /// The client's address, if the transport has one.
    pub source_ip: Option<IpAddr>,
}

impl Context<'_> {
    /// A context with no arguments and no address, at the current time.
    pub fn now() -> Context<'static> {
        Context { arguments: None, time: SystemTime::now(), source_ip: None }
    }
}

/// The outcome, with its reasons. Not `non_exhaustive`: every caller handles both cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Permitted. `reasons`: ids of the permitting policies (or `"no policy configured"`).
    Allow { reasons: Vec<String> },
    /// Denied. `reasons`: ids of the matching `forbid` policies (empty when nothing permitted);
    /// `errors`: evaluation or request errors, each of which denies on its own.
    Deny { reasons: Vec<String>, errors: Vec<String> },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// One problem in the policy files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    /// The file (or source name).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// One sentence.
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found while loading policies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policies:\n{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct PolicyError {
    pub problems: Vec<PolicyProblem>,
}

/// Evaluates Cedar policies. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Authorizer {
    inner: Option<Arc<Loaded>>,
}

struct Loaded {
    policies: PolicySet,
    authorizer: cedar_policy::Authorizer,
    types: Types,
    /// The policies that can apply to one action on one upstream, by their scope alone.
    slices: RwLock<HashMap<(Action, String), Arc<PolicySet>>>,
    /// The last context built, with its second and source address.
    context_cache: RwLock<Option<(u64, Option<IpAddr>, CedarContext)>>,
}

/// Parsed type names and action uids, built once.
struct Types {
    principal: EntityTypeName,
    upstream: EntityTypeName,
    tool: EntityTypeName,
    prompt: EntityTypeName,
    resource: EntityTypeName,
    arguments: EntityTypeName,
    actions: HashMap<Action, EntityUid>,
}

impl Authorizer {
    /// No policy files: every action is permitted.
    pub fn permit_all() -> Self {
        Authorizer { inner: None }
    }

    /// Whether policies are loaded (`false` for [`Authorizer::permit_all`]).
    pub fn has_policies(&self) -> bool {
        self.inner.is_some()
    }

    /// Number of loaded policies.
    pub fn policy_count(&self) -> usize {
        self.inner.as_ref().map_or(0, |l| l.policies.policies().count())
    }

    /// Loads, parses and validates policy files. An empty list gives
    /// [`Authorizer::permit_all`].
    ///
    /// # Errors
    /// Every unreadable file, parse error and validation error, each with file and line.
    pub fn from_files(paths: &[impl AsRef<Path>]) -> Result<Self, PolicyError> {
        if paths.is_empty() {
            return Ok(Authorizer::permit_all());
        }
        let mut sources = Vec::new();
        let mut problems = Vec::new();
        for path in paths {
            let path: PathBuf = path.as_ref().to_path_buf();
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.push((path.display().to_string(), text)),
                Err(e) => problems.push(PolicyProblem {
                    file: path.display().to_string(),
                    line: None,
                    message: format!("cannot read policy file: {e}"),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(PolicyError { problems });
        }
        Authorizer::from_sources(&sources)
    }

    /// Like [`Authorizer::from_files`], from `(name, text)` pairs.
    ///
    /// Each policy's id is its `@id("…")` annotation, or `<file>:<line>`.
    ///
    /// # Errors
    /// Every parse and validation error, with name and line.
    pub fn from_sources(sources: &[(String, String)]) -> Result<Self, PolicyError> {
        let schema = match Schema::from_cedarschema_str(SCHEMA) {
            Ok((schema, _warnings)) => schema,
            Err(e) => {
                return Err(PolicyError {
                    problems: vec![PolicyProblem {
                        file: "moat.cedarschema".into(),
                        line: None,
                        message: format!("built-in schema is invalid: {e}"),
                    }],
                })
            }
        };
        let validator = Validator::new(schema);
        let mut problems = Vec::new();
        let mut all = PolicySet::new();
        let mut seen_ids: HashSet<String> = HashSet::new();
        for (file, text) in sources {
            let parsed = match PolicySet::from_str(text) {
                Ok(p) => p,
                Err(errors) => {
                    for e in errors.iter() {
                        problems.push(problem_from_diagnostic(file, text, e));
                    }
                    continue;
                }
            };
            let result = validator.validate(&parsed, ValidationMode::Strict);
            for e in result.validation_errors() {
                problems.push(problem_from_diagnostic(file, text, e));
            }
            let mut search_from = 0;
            for policy in parsed.policies() {
                let src = policy.to_string();
                let line = text.get(search_from..).and_then(|rest| rest.find(src.as_str())).map(|offset| {
                    search_from += offset + src.len();
                    line_of(text, search_from - src.len())
                });
                let id = match policy.annotation("id") {
                    Some(id) => id.to_owned(),
                    None => match line {
                        Some(line) => format!("{file}:{line}"),
                        None => format!("{file}#{}", policy.id()),
                    },
                };
                if !seen_ids.insert(id.clone()) {
                    problems.push(PolicyProblem {
                        file: file.clone(),
                        line,
                        message: format!("policy id `{id}` is used twice"),
                    });
                    continue;
                }
                if let Err(e) = all.add(policy.new_id(PolicyId::new(&id))) {
                    problems.push(PolicyProblem { file: file.clone(), line, message: e.to_string() });
                }
            }
            if parsed.templates().next().is_some() {
                problems.push(PolicyProblem {
                    file: file.clone(),
                    line: None,
                    message: "policy templates are not supported".into(),
                });
            }
        }
        if !problems.is_empty() {
            return Err(PolicyError { problems });
        }
        let types = Types::new().map_err(|message| PolicyError {
            problems: vec![PolicyProblem { file: "moat.cedarschema".into(), line: None, message }],
        })?;
        Ok(Authorizer {
            inner: Some(Arc::new(Loaded {
                policies: all,
                authorizer: cedar_policy::Authorizer::new(),
                types,
                slices: RwLock::new(HashMap::new()),
                context_cache: RwLock::new(None),
            })),
        })
    }

    /// Decides whether `principal` may do `action` on `resource`.
    ///
    /// Fails closed: an action that does not fit the resource kind, a request the schema
    /// rejects, or an evaluation error in any policy gives [`Decision::Deny`] with the error.
    pub fn is_authorized(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource<'_>,
        context: &Context<'_>,
    ) -> Decision {
        let Some(loaded) = &self.inner else {
            return Decision::Allow { reasons: vec!["no policy configured".to_owned()] };
        };
        match loaded.evaluate(principal, action, resource, context) {
            Ok(decision) => decision,
            Err(error) => Decision::Deny { reasons: Vec::new(), errors: vec![error] },
        }
    }
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer").field("policies", &self.policy_count()).finish()
    }
}

impl Types {
    fn new() -> Result<Self, String> {
        let t = |name: &str| EntityTypeName::from_str(name).map_err(|e| format!("bad entity type `{name}`: {e}"));
        let action_type = t("Moat::Action")?;
        let mut actions = HashMap::new();
        for a in [
            Action::CallTool,
            Action::GetPrompt,
            Action::ReadResource,
            Action::ListTools,
            Action::ListPrompts,
            Action::ListResources,
        ] {
            actions.insert(a, EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(a.as_str())));
        }
        Ok(Types {
            principal: t("Moat::Principal")?,
            upstream: t("Moat::Upstream")?,
            tool: t("Moat::Tool")?,
            prompt: t("Moat::Prompt")?,
            resource: t("Moat::Resource")?,
            arguments: t("Moat::Arguments")?,
            actions,
        })
    }
}

impl Loaded {
    fn evaluate(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource<'_>,
        context: &Context<'_>,
    ) -> Result<Decision, String> {
        let t = &self.types;
        let fits = matches!(
            (action, resource),
            (Action::CallTool | Action::ListTools, Resource::Tool { .. })
                | (Action::GetPrompt | Action::ListPrompts, Resource::Prompt { .. })
                | (Action::ReadResource | Action::ListResources, Resource::Resource { .. })
        );
        if !fits {
            return Err(format!("action `{}` does not apply to this kind of resource", action.as_str()));
        }
        let uid = |ty: &EntityTypeName, id: &str| EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id));
        let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
        let set =
            |items: &std::collections::BTreeSet<String>| RestrictedExpression::new_set(items.iter().map(|i| s(i)));

        // Principal.
        let principal_uid = uid(&t.principal, &principal.key());
        let mut attrs: HashMap<String, RestrictedExpression> = HashMap::new();
        attrs.insert("subject".into(), s(&principal.subject));
        if let Some(c) = &principal.client_id {
            attrs.insert("client_id".into(), s(c));
        }
        attrs.insert("roles".into(), set(&principal.roles));
        attrs.insert("groups".into(), set(&principal.groups));
        attrs.insert("scopes".into(), set(&principal.scopes));
        if let Some(tenant) = &principal.tenant {
            attrs.insert("tenant".into(), s(tenant));
        }
        if let Some(iss) = &principal.issuer {
            attrs.insert("issuer".into(), s(iss));
        }
        attrs.insert("auth_method".into(), s(principal.auth_method.as_str()));
        let principal_entity = Entity::new(principal_uid.clone(), attrs, HashSet::new()).map_err(|e| e.to_string())?;

        // Resource, in its upstream.
        let (upstream, resource_uid, resource_attrs) = match resource {
            Resource::Tool { upstream, name, annotations } => {
                let (read_only, destructive, idempotent, open_world) = annotations.effective();
                let attrs = HashMap::from([
                    ("name".to_owned(), s(name)),
                    ("upstream".to_owned(), s(upstream)),
                    ("read_only".to_owned(), RestrictedExpression::new_bool(read_only)),
                    ("destructive".to_owned(), RestrictedExpression::new_bool(destructive)),
                    ("idempotent".to_owned(), RestrictedExpression::new_bool(idempotent)),
                    ("open_world".to_owned(), RestrictedExpression::new_bool(open_world)),
                ]);
                (*upstream, uid(&t.tool, &format!("{upstream}/{name}")), attrs)
            }
            Resource::Prompt { upstream, name } => {
                let attrs = HashMap::from([("name".to_owned(), s(name)), ("upstream".to_owned(), s(upstream))]);
                (*upstream, uid(&t.prompt, &format!("{upstream}/{name}")), attrs)
            }
            Resource::Resource { upstream, uri } => {
                let attrs = HashMap::from([("uri".to_owned(), s(uri)), ("upstream".to_owned(), s(upstream))]);
                (*upstream, uid(&t.resource, &format!("{upstream}/{uri}")), attrs)
            }
        };
        let upstream_uid = uid(&t.upstream, upstream);
        let resource_entity = Entity::new(resource_uid.clone(), resource_attrs, HashSet::from([upstream_uid.clone()]))
            .map_err(|e| e.to_string())?;
        let upstream_entity = Entity::new_no_attrs(upstream_uid, HashSet::new());

        // Arguments, as tags of one entity (and their names as an attribute), so that the
        // context itself does not depend on the call and can be reused.
        let arguments_uid = uid(&t.arguments, "request");
        let mut names = Vec::new();
        let mut tags = Vec::new();
        if let Some(args) = context.arguments {
            for (name, value) in args.iter().take(MAX_ARGUMENT_TAGS) {
                names.push(s(name));
                tags.push((name.clone(), s(&argument_text(value))));
            }
        }
        let arguments_entity = Entity::new_with_tags(
            arguments_uid.clone(),
            [("names".to_owned(), RestrictedExpression::new_set(names))],
            [],
            tags,
        )
        .map_err(|e| e.to_string())?;

        let cedar_context = self.context(context, arguments_uid)?;

        let action_uid = t.actions.get(&action).cloned().ok_or_else(|| "unknown action".to_owned())?;
        // The request is built by us from the schema's own types, and every policy was
        // validated against the schema in strict mode; validating each request again would
        // only cost time. A mistake here shows up as an evaluation error, which denies.
        let request = Request::new(principal_uid, action_uid.clone(), resource_uid, cedar_context, None)
            .map_err(|e| e.to_string())?;
        // Entities are built by us with the schema's types; checking them against the schema
        // again on every request would double the cost for nothing.
        let entities =
            Entities::from_entities([principal_entity, resource_entity, upstream_entity, arguments_entity], None)
                .map_err(|e| e.to_string())?;

        let slice = self.slice(action, &action_uid, upstream, resource_kind(resource, t))?;
        let response = self.authorizer.is_authorized(&request, &slice, &entities);
        let reasons: Vec<String> = response.diagnostics().reason().map(ToString::to_string).collect();
        let errors: Vec<String> = response.diagnostics().errors().map(ToString::to_string).collect();
        // INVARIANT: any evaluation error denies, even when some policy permitted.
        if !errors.is_empty() {
            return Ok(Decision::Deny { reasons, errors });
        }
        Ok(match response.decision() {
            CedarDecision::Allow => Decision::Allow { reasons },
            CedarDecision::Deny => Decision::Deny { reasons, errors },
        })
    }
}

impl Loaded {
    /// The Cedar context: `arguments` (a reference to the arguments entity), `time`,
    /// `unix_time`, `source_ip`. It depends only on the second and the address, so the last one
    /// built is reused: building it means parsing a `datetime`, which costs more than
    /// evaluating most policies (and list filtering asks once per tool, at the same instant).
    fn context(&self, context: &Context<'_>, arguments_uid: EntityUid) -> Result<CedarContext, String> {
        let unix = context.time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if let Ok(cache) = self.context_cache.read() {
            if let Some((second, ip, cached)) = cache.as_ref() {
                if *second == unix && *ip == context.source_ip {
                    return Ok(cached.clone());
                }
            }
        }
        let mut pairs = vec![
            ("arguments".to_owned(), RestrictedExpression::new_entity_uid(arguments_uid)),
            ("time".to_owned(), RestrictedExpression::new_datetime(rfc3339_utc(unix))),
            ("unix_time".to_owned(), RestrictedExpression::new_long(i64::try_from(unix).unwrap_or(i64::MAX))),
        ];
        if let Some(ip) = context.source_ip {
            pairs.push(("source_ip".to_owned(), RestrictedExpression::new_ip(ip.to_string())));
        }
        let built = CedarContext::from_pairs(pairs).map_err(|e| e.to_string())?;
        if let Ok(mut cache) = self.context_cache.write() {
            *cache = Some((unix, context.source_ip, built.clone()));
        }
        Ok(built)
    }

    /// The policies whose scope can match `action` on something in `upstream`.
    ///
    /// Cedar evaluates every policy of a set for every request. Most deployments scope
    /// policies by action and upstream, so evaluating only the ones whose scope can match
    /// keeps a decision's cost flat as policies are added. INVARIANT: this only drops policies
    /// whose *scope* is false for this request; Cedar evaluates the scope before the
    /// conditions and short-circuits, so a dropped policy could neither apply nor raise an
    /// evaluation error. The decision, its reasons and its errors are unchanged.
    fn slice(
        &self,
        action: Action,
        action_uid: &EntityUid,
        upstream: &str,
        resource_type: &EntityTypeName,
    ) -> Result<Arc<PolicySet>, String> {
        let key = (action, upstream.to_owned());
        if let Ok(slices) = self.slices.read() {
            if let Some(slice) = slices.get(&key) {
                return Ok(Arc::clone(slice));
            }
        }
        let upstream_uid = EntityUid::from_type_name_and_id(self.types.upstream.clone(), EntityId::new(upstream));
        let policies: Vec<Policy> = self
            .policies
            .policies()
            .filter(|p| {
                action_may_match(&p.action_constraint(), action_uid)
                    && resource_may_match(&p.resource_constraint(), &upstream_uid, resource_type, &self.types.upstream)
            })
            .cloned()
            .collect();
        let slice = Arc::new(PolicySet::from_policies(policies).map_err(|e| e.to_string())?);
        if let Ok(mut slices) = self.slices.write() {
            if slices.len() < MAX_SLICES {
                slices.insert(key, Arc::clone(&slice));
            }
        }
        Ok(slice)
    }
}

/// The Cedar type of a resource.
fn resource_kind<'t>(resource: &Resource<'_>, t: &'t Types) -> &'t EntityTypeName {
    match resource {
        Resource::Tool { .. } => &t.tool,
        Resource::Prompt { .. } => &t.prompt,
        Resource::Resource { .. } => &t.resource,
    }
}

/// Whether an action scope can match `action`. The schema has no action groups, so `in [..]`
/// is membership in the list.
fn action_may_match(constraint: &ActionConstraint, action: &EntityUid) -> bool {
    match constraint {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(uid) => uid == action,
        ActionConstraint::In(uids) => uids.contains(action),
    }
}

/// Whether a resource scope can match a resource of `resource_type` whose only parent is
/// `upstream`. Conservative: anything not provably false is kept.
fn resource_may_match(
    constraint: &ResourceConstraint,
    upstream: &EntityUid,
    resource_type: &EntityTypeName,
    upstream_type: &EntityTypeName,
) -> bool {
    // `resource in U` for an upstream U holds only for things in U (a tool, prompt or resource
    // is never an upstream itself).
    let in_ok = |uid: &EntityUid| uid.type_name() != upstream_type || uid == upstream;
    match constraint {
        ResourceConstraint::Any => true,
        ResourceConstraint::In(uid) => in_ok(uid),
        ResourceConstraint::Eq(uid) => uid.type_name() != upstream_type,
        ResourceConstraint::Is(ty) => ty == resource_type,
        ResourceConstraint::IsIn(ty, uid) => ty == resource_type && in_ok(uid),
    }
}

/// An argument value as a Cedar string tag.
fn argument_text(value: &Value) -> String {
    let mut text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.len() > MAX_ARGUMENT_VALUE {
        let mut cut = MAX_ARGUMENT_VALUE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (Cedar's `datetime` input).
fn rfc3339_utc(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, (secs % 3600) / 60, secs % 60)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |before| before.bytes().filter(|b| *b == b'\n').count() + 1)
}

fn problem_from_diagnostic(file: &str, text: &str, d: &(impl Diagnostic + fmt::Display + ?Sized)) -> PolicyProblem {
    let line = d.labels().and_then(|mut labels| labels.next()).map(|label| line_of(text, label.offset()));
    let mut message = d.to_string();
    if let Some(help) = d.help() {
        message.push_str(&format!(" (help: {help})"));
    }
    PolicyProblem { file: file.to_owned(), line, message }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::AuthMethod;

    fn principal(roles: &[&str]) -> Principal {
        let mut p = Principal::new("alice", AuthMethod::Jwt);
        p.roles = roles.iter().map(|r| (*r).to_owned()).collect();
        p
    }

    fn tool<'a>(upstream: &'a str, name: &'a str, read_only: bool) -> Resource<'a> {
        Resource::Tool {
            upstream,
            name,
            annotations: ToolAnnotations { read_only_hint: Some(read_only), ..Default::default() },
        }
    }

    fn load(text: &str) -> Result<Authorizer, PolicyError> {
        Authorizer::from_sources(&[("test.cedar".to_owned(), text.to_owned())])
    }

    #[test]
    fn schema_is_valid() {
        assert!(Schema::from_cedarschema_str(SCHEMA).is_ok());
    }

    #[test]
    fn no_policies_permits_everything() {
        let a = Authorizer::permit_all();
        assert!(a
            .is_authorized(&principal(&[]), Action::CallTool, &tool("u", "t", false), &Context::now())
            .is_allowed());
        let empty: [&str; 0] = [];
        assert!(!Authorizer::from_files(&empty).map(|a| a.has_policies()).unwrap_or(true));
    }

    #[test]
    fn decisions_carry_policy_ids() {
        let a = load(
            r#"
@id("readers-read")
permit(principal, action == Moat::Action::"call_tool", resource)
when { principal.roles.contains("reader") && resource.read_only };

forbid(principal, action, resource in Moat::Upstream::"secret");
"#,
        );
        let a = a.unwrap_or_else(|e| panic!("{e}"));
        let d = a.is_authorized(&principal(&["reader"]), Action::CallTool, &tool("u", "t", true), &Context::now());
        assert_eq!(d, Decision::Allow { reasons: vec!["readers-read".into()] });
        let d = a.is_authorized(&principal(&["reader"]), Action::CallTool, &tool("secret", "t", true), &Context::now());
        assert_eq!(d, Decision::Deny { reasons: vec!["test.cedar:6".into()], errors: vec![] });
        let d = a.is_authorized(&principal(&["reader"]), Action::CallTool, &tool("u", "t", false), &Context::now());
        assert_eq!(d, Decision::Deny { reasons: vec![], errors: vec![] });
    }

    #[test]
    fn validation_errors_name_file_and_line() {
        let e = load("permit(principal, action, resource);\n\npermit(principal, action, resource)\nwhen { principal.rolez.contains(\"x\") };\n");
        let problems = e.err().map(|e| e.problems).unwrap_or_default();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems.first().map(|p| (p.file.as_str(), p.line)), Some(("test.cedar", Some(4))));
        let e = load("permit(principal, action, resource)\nwhen { ;");
        let problems = e.err().map(|e| e.problems).unwrap_or_default();
        assert!(problems.first().is_some_and(|p| p.line == Some(2)), "{problems:?}");
    }

    #[test]
    fn evaluation_errors_deny_even_with_a_permit() {
        // The multiplication overflows at run time (the validator cannot know): the forbid
        // errors, so Cedar alone would skip it and allow. We deny.
        let a = load(
            r#"
@id("everything")
permit(principal, action, resource);
@id("overflowing-forbid")
forbid(principal, action, resource) when { context.unix_time * 100000000000 > 0 };
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let d = a.is_authorized(&principal(&[]), Action::CallTool, &tool("u", "t", true), &Context::now());
        match d {
            Decision::Deny { errors, .. } => {
                assert!(errors.iter().any(|e| e.contains("overflowing-forbid")), "{errors:?}");
            }
            other => panic!("not denied: {other:?}"),
        }
    }

    #[test]
    fn unguarded_tag_access_is_a_load_error_and_guarded_access_works() {
        let e =
            load("permit(principal, action, resource)\nwhen { context.arguments.getTag(\"path\") like \"/srv/*\" };");
        assert!(e.is_err());
        let a = load(
            r#"
permit(principal, action, resource);
forbid(principal, action == Moat::Action::"call_tool", resource)
when { context.arguments.hasTag("path") && context.arguments.getTag("path") like "/etc/*" };
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let decide = |args: serde_json::Value| {
            let ctx = Context { arguments: args.as_object(), ..Context::now() };
            a.is_authorized(&principal(&[]), Action::CallTool, &tool("u", "t", true), &ctx).is_allowed()
        };
        assert!(!decide(serde_json::json!({"path": "/etc/passwd"})));
        assert!(decide(serde_json::json!({"path": "/srv/x"})));
        assert!(decide(serde_json::json!({"other": 1})));
        let names =
            load(r#"permit(principal, action, resource) when { context.arguments.names.contains("confirm") };"#)
                .unwrap_or_else(|e| panic!("{e}"));
        fn ctx(v: &serde_json::Value) -> Context<'_> {
            Context { arguments: v.as_object(), ..Context::now() }
        }
        let with = serde_json::json!({"confirm": true, "n": 1});
        let without = serde_json::json!({"n": 1});
        assert!(names
            .is_authorized(&principal(&[]), Action::CallTool, &tool("u", "t", true), &ctx(&with))
            .is_allowed());
        assert!(!names
            .is_authorized(&principal(&[]), Action::CallTool, &tool("u", "t", true), &ctx(&without))
            .is_allowed());
    }

    #[test]
    fn action_must_fit_the_resource() {
        let a = load("permit(principal, action, resource);").unwrap_or_else(|e| panic!("{e}"));
        let d = a.is_authorized(&principal(&[]), Action::GetPrompt, &tool("u", "t", true), &Context::now());
        assert!(!d.is_allowed());
    }

    #[test]
    fn context_time_and_source_ip() {
        let a = load(
            r#"
permit(principal, action, resource)
when { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8"))
       && context.time > datetime("2020-01-01") && context.unix_time > 0 };
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let inside = Context { source_ip: "10.1.2.3".parse().ok(), ..Context::now() };
        let outside = Context { source_ip: "192.0.2.1".parse().ok(), ..Context::now() };
        assert!(a.is_authorized(&principal(&[]), Action::ListTools, &tool("u", "t", true), &inside).is_allowed());
        assert!(!a.is_authorized(&principal(&[]), Action::ListTools, &tool("u", "t", true), &outside).is_allowed());
        assert!(!a
            .is_authorized(&principal(&[]), Action::ListTools, &tool("u", "t", true), &Context::now())
            .is_allowed());
    }

    #[test]
    fn scope_slicing_keeps_every_decision() {
        let a = load(
            r#"
@id("a-team")
permit(principal, action, resource in Moat::Upstream::"a") when { principal.groups.contains("t") };
@id("b-tools")
permit(principal, action == Moat::Action::"call_tool", resource is Moat::Tool in Moat::Upstream::"b");
@id("prompts")
permit(principal, action in [Moat::Action::"get_prompt"], resource is Moat::Prompt);
@id("no-a-deletes")
forbid(principal, action, resource in Moat::Upstream::"a") when { resource is Moat::Tool && resource.name == "delete" };
@id("overflow-in-c")
forbid(principal, action, resource in Moat::Upstream::"c") when { context.unix_time * 100000000000 > 0 };
@id("exact-tool")
permit(principal, action, resource == Moat::Tool::"d/t");
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut p = principal(&[]);
        p.groups.insert("t".into());
        let ctx = Context::now();
        let decide = |action, r: &Resource<'_>| a.is_authorized(&p, action, r, &ctx);
        let allow = |id: &str| Decision::Allow { reasons: vec![id.to_owned()] };
        assert_eq!(decide(Action::CallTool, &tool("a", "t", true)), allow("a-team"));
        assert_eq!(
            decide(Action::CallTool, &tool("a", "delete", true)),
            Decision::Deny { reasons: vec!["no-a-deletes".into()], errors: vec![] }
        );
        assert_eq!(decide(Action::CallTool, &tool("b", "t", true)), allow("b-tools"));
        assert!(!decide(Action::ListTools, &tool("b", "t", true)).is_allowed());
        let prompt = Resource::Prompt { upstream: "b", name: "p" };
        assert_eq!(decide(Action::GetPrompt, &prompt), allow("prompts"));
        assert!(!decide(Action::ListPrompts, &prompt).is_allowed());
        // The erroring forbid only matters on its own upstream.
        assert!(
            matches!(decide(Action::CallTool, &tool("c", "t", true)), Decision::Deny { errors, .. } if !errors.is_empty())
        );
        assert_eq!(decide(Action::CallTool, &tool("d", "t", true)), allow("exact-tool"));
        assert!(!decide(Action::CallTool, &tool("d", "u", true)).is_allowed());
        // Asking again uses the cached slices and gives the same answers.
        assert_eq!(decide(Action::CallTool, &tool("a", "t", true)), allow("a-team"));
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_707_196), "2026-11-26T15:33:16Z");
    }

    #[test]
    fn annotations_default_to_destructive() {
        assert_eq!(ToolAnnotations::default().effective(), (false, true, false, true));
        let ro = ToolAnnotations::from_json(Some(&serde_json::json!({"readOnlyHint": true})));
        assert_eq!(ro.effective(), (true, false, false, true));
        let safe = ToolAnnotations::from_json(Some(&serde_json::json!({"destructiveHint": false})));
        assert_eq!(safe.effective(), (false, false, false, true));
    }
}
