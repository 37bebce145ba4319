//! Protocol versions: the one place that knows which MCP revisions Moat speaks and how
//! they differ. Adding a revision (such as the stateless 2026-07-28) means adding a variant
//! here and handling the places its `match`es point at.

use std::fmt;

/// An MCP protocol revision Moat serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    V2025_03_26,
    V2025_06_18,
    V2025_11_25,
}

impl ProtocolVersion {
    /// The revision Moat implements first and offers when a client asks for one it lacks.
    pub const LATEST: ProtocolVersion = ProtocolVersion::V2025_11_25;
    /// Every revision served, oldest first.
    pub const SUPPORTED: [ProtocolVersion; 3] =
        [ProtocolVersion::V2025_03_26, ProtocolVersion::V2025_06_18, ProtocolVersion::V2025_11_25];
    /// What a Streamable HTTP request without `MCP-Protocol-Version` is taken to speak
    /// (the transport spec's rule for backwards compatibility).
    pub const ASSUMED_WITHOUT_HEADER: ProtocolVersion = ProtocolVersion::V2025_03_26;

    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V2025_03_26 => "2025-03-26",
            ProtocolVersion::V2025_06_18 => "2025-06-18",
            ProtocolVersion::V2025_11_25 => "2025-11-25",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::SUPPORTED.into_iter().find(|v| v.as_str() == s)
    }

    /// The version to answer an `initialize` that asked for `requested`: the same one when
    /// Moat speaks it, else the latest (the client then decides whether to continue).
    pub fn negotiate(requested: Option<&str>) -> ProtocolVersion {
        requested.and_then(Self::parse).unwrap_or(Self::LATEST)
    }

    /// Whether the `MCP-Protocol-Version` header is required on requests after `initialize`.
    pub fn requires_version_header(self) -> bool {
        self >= ProtocolVersion::V2025_06_18
    }

    /// Whether JSON-RPC batches are allowed (2025-03-26 only; removed in 2025-06-18).
    pub fn allows_batches(self) -> bool {
        self == ProtocolVersion::V2025_03_26
    }

    /// Whether a client of this revision may be sent elicitation requests.
    pub fn has_elicitation(self) -> bool {
        self >= ProtocolVersion::V2025_06_18
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Methods of protocol revisions Moat does not serve yet, answered so that their clients
/// fall back to `initialize` instead of hanging.
pub mod newer {
    /// The stateless revision's discovery probe (sent first by Python SDK 2.x clients).
    pub const SERVER_DISCOVER: &str = "server/discover";
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_keeps_supported_and_offers_latest_otherwise() {
        assert_eq!(ProtocolVersion::negotiate(Some("2025-06-18")), ProtocolVersion::V2025_06_18);
        assert_eq!(ProtocolVersion::negotiate(Some("2025-03-26")), ProtocolVersion::V2025_03_26);
        assert_eq!(ProtocolVersion::negotiate(Some("2024-11-05")), ProtocolVersion::LATEST);
        assert_eq!(ProtocolVersion::negotiate(Some("2026-07-28")), ProtocolVersion::LATEST);
        assert_eq!(ProtocolVersion::negotiate(None), ProtocolVersion::LATEST);
    }
}
