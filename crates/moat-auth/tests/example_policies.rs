//! The example policies in `examples/policies/` load, validate, and decide what they say.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;

use moat_auth::policy::{Action, Authorizer, Context, Decision, Resource, ToolAnnotations};
use moat_auth::{AuthMethod, Principal};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies").join(name)
}

fn who(roles: &[&str], groups: &[&str]) -> Principal {
    let mut p = Principal::new("someone", AuthMethod::Jwt);
    p.roles = roles.iter().map(|s| s.to_string()).collect();
    p.groups = groups.iter().map(|s| s.to_string()).collect();
    p
}

fn tool<'a>(upstream: &'a str, name: &'a str, annotations: serde_json::Value) -> Resource<'a> {
    Resource::Tool { upstream, name, annotations: ToolAnnotations::from_json(Some(&annotations)) }
}

fn allowed(a: &Authorizer, p: &Principal, action: Action, r: &Resource<'_>) -> bool {
    match a.is_authorized(p, action, r, &Context::now()) {
        Decision::Allow { .. } => true,
        Decision::Deny { errors, .. } => {
            assert!(errors.is_empty(), "evaluation errors: {errors:?}");
            false
        }
    }
}

#[test]
fn read_only_role() {
    let a = Authorizer::from_files(&[example("read-only.cedar")]).unwrap();
    let reader = who(&["reader"], &[]);
    let search = tool("docs", "search", serde_json::json!({"readOnlyHint": true}));
    let delete = tool("docs", "delete_page", serde_json::json!({"destructiveHint": true}));
    let unannotated = tool("docs", "mystery", serde_json::json!({}));
    assert!(allowed(&a, &reader, Action::CallTool, &search));
    assert!(allowed(&a, &reader, Action::ListTools, &search));
    assert!(!allowed(&a, &reader, Action::CallTool, &delete));
    assert!(!allowed(&a, &reader, Action::ListTools, &delete), "hidden from the list too");
    assert!(!allowed(&a, &reader, Action::CallTool, &unannotated), "no annotation = not read-only");
    let prompt = Resource::Prompt { upstream: "docs", name: "summarize" };
    assert!(allowed(&a, &reader, Action::GetPrompt, &prompt));
    // No role, nothing.
    assert!(!allowed(&a, &who(&[], &[]), Action::CallTool, &search));
}

#[test]
fn per_team_upstreams() {
    let a = Authorizer::from_files(&[example("per-team-upstreams.cedar")]).unwrap();
    let payments = who(&[], &["team-payments"]);
    let data = who(&[], &["team-data"]);
    let refund = tool("payments", "refund", serde_json::json!({}));
    let query = tool("warehouse", "query", serde_json::json!({"readOnlyHint": true}));
    let docs = tool("docs", "search", serde_json::json!({}));
    assert!(allowed(&a, &payments, Action::CallTool, &refund));
    assert!(!allowed(&a, &payments, Action::CallTool, &query));
    assert!(!allowed(&a, &payments, Action::ListTools, &query));
    assert!(allowed(&a, &data, Action::CallTool, &query));
    assert!(!allowed(&a, &data, Action::CallTool, &refund));
    assert!(allowed(&a, &data, Action::CallTool, &docs));
    assert!(allowed(&a, &who(&[], &[]), Action::CallTool, &docs));
    let resource = Resource::Resource { upstream: "warehouse", uri: "db://sales" };
    assert!(allowed(&a, &data, Action::ReadResource, &resource));
    assert!(!allowed(&a, &payments, Action::ReadResource, &resource));
}

#[test]
fn destructive_tools_need_admin_even_when_another_policy_permits() {
    // All three files together, as a deployment would load them.
    let a = Authorizer::from_files(&[
        example("read-only.cedar"),
        example("per-team-upstreams.cedar"),
        example("destructive-needs-admin.cedar"),
    ])
    .unwrap();
    assert_eq!(a.policy_count(), 7);
    let payments = who(&[], &["team-payments"]);
    let admin = who(&["admin"], &[]);
    let refund = tool("payments", "refund", serde_json::json!({"destructiveHint": true}));
    let balance = tool("payments", "balance", serde_json::json!({"readOnlyHint": true}));
    let wipe = tool("payments", "wipe", serde_json::json!({}));
    // The team policy permits the payments upstream, but the forbid wins for destructive tools.
    let d = a.is_authorized(&payments, Action::CallTool, &refund, &Context::now());
    assert_eq!(d, Decision::Deny { reasons: vec!["destructive-tools-need-admin".into()], errors: vec![] });
    assert!(!allowed(&a, &payments, Action::CallTool, &wipe));
    assert!(allowed(&a, &payments, Action::CallTool, &balance));
    // Listing is not calling: the team still sees the tool.
    assert!(allowed(&a, &payments, Action::ListTools, &refund));
    // Admins may call it.
    let d = a.is_authorized(&admin, Action::CallTool, &refund, &Context::now());
    assert_eq!(d, Decision::Allow { reasons: vec!["admins-do-everything".into()] });
}
