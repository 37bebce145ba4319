//! The fixture server for the MCP conformance suite's server scenarios
//! (`@modelcontextprotocol/conformance` 0.1.16): the tools, resources, prompts, completions,
//! logging and subscriptions that those scenarios call, with the exact texts they check.
//!
//! Elicitation requests are sent as raw JSON rather than through the SDK's typed schema, so
//! that every JSON Schema keyword the scenarios look for (`default`, `oneOf`, `enumNames`,
//! `anyOf`) reaches the client exactly as written.

// Sampling, logging and resources/subscribe are deprecated by the 2026-07-28 revision (SEP-2577),
// but they are current in 2025-11-25, the revision this fixture serves and the suite tests.
#![allow(deprecated)]

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    AudioContent, CallToolRequestParams, CallToolResponse, CallToolResult, ClientResult, CompleteRequestParams,
    CompleteResult, CompletionInfo, ContentBlock, CreateMessageRequestParams, CustomRequest, DiscoverRequestMethod,
    DiscoverResult, GetPromptRequestParams, GetPromptResponse, GetPromptResult, ImageContent, Implementation,
    JsonObject, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel,
    LoggingMessageNotificationParam, PaginatedRequestParams, ProgressNotificationParam, Prompt, PromptArgument,
    PromptMessage, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Reference,
    Resource, ResourceContents, ResourceTemplate, Role, SamplingMessage, ServerCapabilities, ServerConfig,
    ServerRequest, SetLevelRequestParams, SubscribeRequestParams, Tool, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};

/// A 1x1 red PNG.
const PNG_1X1: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A WAV file with a header and no samples.
const WAV_EMPTY: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=";

/// Pause between the notifications of the logging and progress tools, as the scenarios ask.
const STEP_DELAY: Duration = Duration::from_millis(50);

/// The conformance fixture server. Each session gets its own log level and subscriptions.
#[derive(Debug, Clone)]
pub struct ConformanceServer {
    state: Arc<Mutex<SessionState>>,
}

#[derive(Debug)]
struct SessionState {
    log_level: LoggingLevel,
    subscriptions: HashSet<String>,
}

impl Default for ConformanceServer {
    fn default() -> Self {
        Self::new()
    }
}

impl ConformanceServer {
    /// A fixture server with log level `debug` and no subscriptions.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(SessionState { log_level: LoggingLevel::Debug, subscriptions: HashSet::new() })),
        }
    }

    fn log_enabled(&self, level: LoggingLevel) -> bool {
        let current = self.state.lock().map(|s| s.log_level).unwrap_or(LoggingLevel::Debug);
        severity(level) >= severity(current)
    }

    async fn log(&self, cx: &RequestContext<RoleServer>, message: &str) {
        if self.log_enabled(LoggingLevel::Info) {
            let param = LoggingMessageNotificationParam::new(LoggingLevel::Info, json!(message))
                .with_logger("moat-demo-conformance");
            if let Err(error) = cx.peer.notify_logging_message(param).await {
                tracing::debug!(%error, "could not send a log notification");
            }
        }
    }

    async fn call(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let text = |t: &str| Ok(CallToolResult::success(vec![ContentBlock::text(t)]));
        match request.name.as_ref() {
            "test_simple_text" => text("This is a simple text response for testing."),
            "test_image_content" => Ok(CallToolResult::success(vec![ContentBlock::image(PNG_1X1, "image/png")])),
            "test_audio_content" => {
                Ok(CallToolResult::success(vec![ContentBlock::Audio(AudioContent::new(WAV_EMPTY, "audio/wav"))]))
            }
            "test_embedded_resource" => Ok(CallToolResult::success(vec![ContentBlock::resource(
                ResourceContents::text("This is an embedded resource content.", "test://embedded-resource")
                    .with_mime_type("text/plain"),
            )])),
            "test_multiple_content_types" => Ok(CallToolResult::success(vec![
                ContentBlock::text("Multiple content types test:"),
                ContentBlock::image(PNG_1X1, "image/png"),
                ContentBlock::resource(
                    ResourceContents::text(r#"{"test":"data","value":123}"#, "test://mixed-content-resource")
                        .with_mime_type("application/json"),
                ),
            ])),
            "test_tool_with_logging" => {
                self.log(&cx, "Tool execution started").await;
                tokio::time::sleep(STEP_DELAY).await;
                self.log(&cx, "Tool processing data").await;
                tokio::time::sleep(STEP_DELAY).await;
                self.log(&cx, "Tool execution completed").await;
                text("Tool with logging executed successfully")
            }
            "test_error_handling" => Ok(CallToolResult::error(vec![ContentBlock::text(
                "This tool intentionally returns an error for testing",
            )])),
            "test_tool_with_progress" => {
                let token = cx.meta.get_progress_token();
                for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                    if i > 0 {
                        tokio::time::sleep(STEP_DELAY).await;
                    }
                    if let Some(token) = &token {
                        let param = ProgressNotificationParam::new(token.clone(), progress).with_total(100.0);
                        if let Err(error) = cx.peer.notify_progress(param).await {
                            tracing::debug!(%error, "could not send a progress notification");
                        }
                    }
                }
                text("Tool with progress executed successfully")
            }
            "test_sampling" => {
                if cx.client_capabilities().is_none_or(|c| c.sampling.is_none()) {
                    return Ok(tool_error("the client does not support sampling"));
                }
                let prompt = str_arg(&args, "prompt").unwrap_or("Hello");
                let params = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100);
                match cx.peer.create_message(params).await {
                    Ok(result) => {
                        let answer = result
                            .message
                            .content
                            .first()
                            .and_then(|c| c.as_text())
                            .map(|t| t.text.clone())
                            .unwrap_or_default();
                        text(&format!("LLM response: {answer}"))
                    }
                    Err(error) => Ok(tool_error(&format!("sampling failed: {error}"))),
                }
            }
            "test_elicitation" => {
                let message = str_arg(&args, "message").unwrap_or("Please provide your information");
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "username": { "type": "string", "description": "User's response" },
                        "email": { "type": "string", "description": "User's email address" }
                    },
                    "required": ["username", "email"]
                });
                match elicit(&cx, message, schema).await {
                    Ok((action, content)) => text(&format!("User response: action={action}, content={content}")),
                    Err(error) => Ok(tool_error(&error)),
                }
            }
            "test_elicitation_sep1034_defaults" => {
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "name": { "type": "string", "description": "User name", "default": "John Doe" },
                        "age": { "type": "integer", "description": "User age", "default": 30 },
                        "score": { "type": "number", "description": "User score", "default": 95.5 },
                        "status": {
                            "type": "string",
                            "description": "User status",
                            "enum": ["active", "inactive", "pending"],
                            "default": "active"
                        },
                        "verified": { "type": "boolean", "description": "Verification status", "default": true }
                    }
                });
                match elicit(&cx, "Please review and update the form fields with defaults", schema).await {
                    Ok((action, content)) => {
                        text(&format!("Elicitation completed: action={action}, content={content}"))
                    }
                    Err(error) => Ok(tool_error(&error)),
                }
            }
            "test_elicitation_sep1330_enums" => {
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "untitledSingle": { "type": "string", "enum": ["option1", "option2", "option3"] },
                        "titledSingle": {
                            "type": "string",
                            "oneOf": [
                                { "const": "value1", "title": "First Option" },
                                { "const": "value2", "title": "Second Option" },
                                { "const": "value3", "title": "Third Option" }
                            ]
                        },
                        "legacyEnum": {
                            "type": "string",
                            "enum": ["opt1", "opt2", "opt3"],
                            "enumNames": ["Option One", "Option Two", "Option Three"]
                        },
                        "untitledMulti": {
                            "type": "array",
                            "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
                        },
                        "titledMulti": {
                            "type": "array",
                            "items": {
                                "anyOf": [
                                    { "const": "value1", "title": "First Choice" },
                                    { "const": "value2", "title": "Second Choice" },
                                    { "const": "value3", "title": "Third Choice" }
                                ]
                            }
                        }
                    }
                });
                match elicit(&cx, "Please select options from the enum fields", schema).await {
                    Ok((action, content)) => {
                        text(&format!("Elicitation completed: action={action}, content={content}"))
                    }
                    Err(error) => Ok(tool_error(&error)),
                }
            }
            "json_schema_2020_12_tool" => {
                let name = str_arg(&args, "name").unwrap_or("world");
                text(&format!("Hello, {name}!"))
            }
            "test_reconnection" => {
                // The scenario would like the server to close the SSE stream mid-call; this
                // fixture answers after a short pause on the open stream instead.
                tokio::time::sleep(Duration::from_millis(100)).await;
                text("Reconnection test completed")
            }
            other => Err(ErrorData::invalid_params(format!("unknown tool `{other}`"), None)),
        }
    }
}

impl ServerHandler for ConformanceServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_logging()
            .enable_completions()
            .build();
        ServerConfig::new(capabilities)
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
            .with_server_info(Implementation::new("moat-demo-conformance", env!("CARGO_PKG_VERSION")))
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25))
    }

    async fn discover(&self, _cx: RequestContext<RoleServer>) -> Result<DiscoverResult, ErrorData> {
        Err(ErrorData::method_not_found::<DiscoverRequestMethod>())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let empty = || object(json!({ "type": "object", "properties": {} }));
        let mut tools: Vec<Tool> = [
            ("test_simple_text", "Returns simple text content"),
            ("test_image_content", "Returns image content"),
            ("test_audio_content", "Returns audio content"),
            ("test_embedded_resource", "Returns an embedded resource"),
            ("test_multiple_content_types", "Returns text, image and resource content"),
            ("test_tool_with_logging", "Sends log notifications while it runs"),
            ("test_error_handling", "Always returns a tool error"),
            ("test_tool_with_progress", "Sends progress notifications while it runs"),
            ("test_elicitation_sep1034_defaults", "Elicits a form whose fields have defaults"),
            ("test_elicitation_sep1330_enums", "Elicits a form with every kind of enum"),
            ("test_reconnection", "Answers after a pause (SSE polling scenario)"),
        ]
        .into_iter()
        .map(|(name, description)| Tool::new(name, description, empty()))
        .collect();
        tools.push(Tool::new(
            "test_sampling",
            "Asks the client to sample an LLM",
            object(json!({
                "type": "object",
                "properties": { "prompt": { "type": "string", "description": "The prompt to send" } },
                "required": ["prompt"]
            })),
        ));
        tools.push(Tool::new(
            "test_elicitation",
            "Asks the client to elicit user input",
            object(json!({
                "type": "object",
                "properties": { "message": { "type": "string", "description": "The message to show" } },
                "required": ["message"]
            })),
        ));
        tools.push(Tool::new(
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features",
            object(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "$defs": {
                    "address": {
                        "type": "object",
                        "properties": { "street": { "type": "string" }, "city": { "type": "string" } }
                    }
                },
                "properties": {
                    "name": { "type": "string" },
                    "address": { "$ref": "#/$defs/address" }
                },
                "additionalProperties": false
            })),
        ));
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.call(request, cx).await.map(CallToolResponse::from)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new("test://static-text", "Static Text Resource")
                .with_description("A static text resource for testing")
                .with_mime_type("text/plain"),
            Resource::new("test://static-binary", "Static Binary Resource")
                .with_description("A static binary resource (a PNG image) for testing")
                .with_mime_type("image/png"),
            Resource::new("test://watched-resource", "Watched Resource")
                .with_description("A resource that can be subscribed to")
                .with_mime_type("text/plain"),
        ]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![ResourceTemplate::new(
            "test://template/{id}/data",
            "Dynamic Resource",
        )
        .with_description("A resource whose id is substituted into the URI")
        .with_mime_type("application/json")]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        let contents = match uri {
            "test://static-text" => ResourceContents::text("This is the content of the static text resource.", uri),
            "test://static-binary" => ResourceContents::blob(PNG_1X1, uri).with_mime_type("image/png"),
            "test://watched-resource" => ResourceContents::text("This resource can be watched for updates.", uri),
            _ => match uri.strip_prefix("test://template/").and_then(|rest| rest.strip_suffix("/data")) {
                Some(id) if !id.is_empty() && !id.contains('/') => ResourceContents::text(
                    json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") }).to_string(),
                    uri,
                )
                .with_mime_type("application/json"),
                _ => {
                    return Err(ErrorData::resource_not_found(
                        format!("no resource `{uri}`"),
                        Some(json!({ "uri": uri })),
                    ))
                }
            },
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if let Ok(mut state) = self.state.lock() {
            state.subscriptions.insert(request.uri);
        }
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if let Ok(mut state) = self.state.lock() {
            state.subscriptions.remove(&request.uri);
        }
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let arg =
            |name: &str, description: &str| PromptArgument::new(name).with_description(description).with_required(true);
        Ok(ListPromptsResult::with_all_items(vec![
            Prompt::new("test_simple_prompt", Some("A simple prompt without arguments"), None),
            Prompt::new(
                "test_prompt_with_arguments",
                Some("A prompt with two arguments"),
                Some(vec![arg("arg1", "First test argument"), arg("arg2", "Second test argument")]),
            ),
            Prompt::new(
                "test_prompt_with_embedded_resource",
                Some("A prompt that embeds a resource"),
                Some(vec![arg("resourceUri", "URI of the resource to embed")]),
            ),
            Prompt::new("test_prompt_with_image", Some("A prompt with an image"), None),
        ]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let messages = match request.name.as_str() {
            "test_simple_prompt" => vec![PromptMessage::new_text(Role::User, "This is a simple prompt for testing.")],
            "test_prompt_with_arguments" => {
                let arg1 = str_arg(&args, "arg1").unwrap_or_default();
                let arg2 = str_arg(&args, "arg2").unwrap_or_default();
                vec![PromptMessage::new_text(
                    Role::User,
                    format!("Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"),
                )]
            }
            "test_prompt_with_embedded_resource" => {
                let uri = str_arg(&args, "resourceUri").unwrap_or("test://example-resource");
                vec![
                    PromptMessage::new_resource(
                        Role::User,
                        uri.to_owned(),
                        Some("text/plain".to_owned()),
                        Some("Embedded resource content for testing.".to_owned()),
                        None,
                        None,
                        None,
                    ),
                    PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
                ]
            }
            "test_prompt_with_image" => vec![
                PromptMessage::new(Role::User, ContentBlock::Image(ImageContent::new(PNG_1X1, "image/png"))),
                PromptMessage::new_text(Role::User, "Please analyze the image above."),
            ],
            other => return Err(ErrorData::invalid_params(format!("unknown prompt `{other}`"), None)),
        };
        Ok(GetPromptResult::new(messages).into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let candidates: &[&str] = match (&request.r#ref, request.argument.name.as_str()) {
            (Reference::Prompt(_), "arg1") => &["paris", "park", "party"],
            (Reference::Prompt(_), "arg2") => &["hello", "help", "world"],
            (Reference::Resource(_), "id") => &["1", "2", "3", "123"],
            _ => &[],
        };
        let prefix = request.argument.value.as_str();
        let values: Vec<String> =
            candidates.iter().filter(|c| c.starts_with(prefix)).map(|c| (*c).to_owned()).collect();
        let total = u32::try_from(values.len()).unwrap_or(u32::MAX);
        let mut info = CompletionInfo::new(values).map_err(|e| ErrorData::internal_error(e, None))?;
        info.total = Some(total);
        info.has_more = Some(false);
        Ok(CompleteResult::new(info))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if let Ok(mut state) = self.state.lock() {
            state.log_level = request.level;
        }
        Ok(())
    }
}

/// Sends `elicitation/create` with `schema` as written and returns the action and content.
async fn elicit(cx: &RequestContext<RoleServer>, message: &str, schema: Value) -> Result<(String, Value), String> {
    if cx.client_capabilities().is_none_or(|c| c.elicitation.is_none()) {
        return Err("the client does not support elicitation".to_owned());
    }
    let params = json!({ "mode": "form", "message": message, "requestedSchema": schema });
    let request = ServerRequest::CustomRequest(CustomRequest::new("elicitation/create", Some(params)));
    let result = cx.peer.send_request(request).await.map_err(|e| format!("elicitation failed: {e}"))?;
    let value = client_result_json(&result);
    let action = value.get("action").and_then(Value::as_str).unwrap_or("unknown").to_owned();
    let content = value.get("content").cloned().unwrap_or(Value::Null);
    Ok((action, content))
}

fn client_result_json(result: &ClientResult) -> Value {
    serde_json::to_value(result).unwrap_or(Value::Null)
}

fn tool_error(message: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

fn str_arg<'a>(args: &'a JsonObject, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

fn object(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(JsonObject::new()),
    }
}

/// RFC 5424 severity order of MCP log levels, lowest first.
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}
