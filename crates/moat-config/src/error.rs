//! Configuration errors: each names the file, the line, the key and what was expected.

use std::fmt;

use crate::Origin;

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    /// The file (or the embedded default) the problem is in.
    pub origin: String,
    /// 1-based line and column, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted key path, e.g. `gateway.listen` or `upstream[1].url`.
    pub key: Option<String>,
    /// One lowercase sentence: what is wrong.
    pub message: String,
    /// What to do about it, when there is advice.
    pub help: Option<String>,
}

impl ConfigError {
    pub(crate) fn io(origin: Origin, err: std::io::Error) -> Self {
        let message = match err.kind() {
            std::io::ErrorKind::NotFound => "configuration file not found".to_string(),
            _ => format!("cannot read configuration file: {err}"),
        };
        ConfigError {
            origin: origin.to_string(),
            line: None,
            column: None,
            key: None,
            message,
            help: Some(
                "pass an existing file with `--config PATH`, or run without it to use the embedded default".into(),
            ),
        }
    }

    pub(crate) fn from_toml(origin: &Origin, source: &str, err: &toml::de::Error) -> Self {
        let (line, column) = err.span().map(|s| crate::locate::line_col(source, s.start)).unzip();
        let key = err.span().and_then(|s| crate::locate::key_at(source, s.start));
        let mut message = err.message().trim().to_string();
        let mut help = None;
        if let Some(rest) = message.strip_prefix("unknown field `") {
            // toml says: unknown field `x`, expected one of `a`, `b`
            let field = rest.split('`').next().unwrap_or_default().to_string();
            let expected: Vec<String> = message
                .split("expected")
                .nth(1)
                .map(|tail| tail.split('`').skip(1).step_by(2).map(str::to_string).collect())
                .unwrap_or_default();
            if let Some(near) = crate::locate::nearest(&field, &expected) {
                help = Some(format!("did you mean `{near}`?"));
            }
            message = format!("unknown key `{field}`; {}", expected_list(&expected));
        }
        ConfigError { origin: origin.to_string(), line, column, key, message: lowercase_first(&message), help }
    }

    pub(crate) fn at(origin: &Origin, source: &str, key: &str, message: impl Into<String>) -> Self {
        let (line, column) = crate::locate::find_key(source, key).unzip();
        ConfigError {
            origin: origin.to_string(),
            line,
            column,
            key: Some(key.to_string()),
            message: message.into(),
            help: None,
        }
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

fn expected_list(expected: &[String]) -> String {
    if expected.is_empty() {
        "this table takes no such key".to_string()
    } else {
        let keys: Vec<String> = expected.iter().map(|k| format!("`{k}`")).collect();
        format!("expected one of {}", keys.join(", "))
    }
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "`{key}`: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one configuration, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub(crate) fn one(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "error: {e}")?;
        }
        if n > 1 {
            write!(f, "\n{n} errors in configuration")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
