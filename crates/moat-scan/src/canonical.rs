//! RFC 8785 canonical JSON and pin hashes live in `moat-detect` (pure code shared with the
//! gateway's pinning); this module re-exports them for the scanner.

pub use moat_detect::canonical::{canonical_json, canonical_sha256, pin_hash, pinned_definition, PinDomain};
