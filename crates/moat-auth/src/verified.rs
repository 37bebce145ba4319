//! A cache of JWTs already verified, so that a client presenting the same token on every
//! request pays for the signature check once.
//!
//! INVARIANT: an entry is used only while (1) the token has not expired (its `exp` plus the
//! same leeway the verification allowed), and (2) the signing keys are the ones it was verified
//! with: any JWKS fetch bumps the key generation, and entries from an older generation are
//! misses. The key is SHA-256 of the whole token (signature included), so a hit means the very
//! same bytes were verified before; the cache holds no usable token.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::principal::Principal;

/// Most cached tokens; when full, expired entries are dropped, then everything.
const MAX_ENTRIES: usize = 10_000;

struct Entry {
    principal: Principal,
    /// Unix seconds after which the entry is dead (`exp` + leeway).
    until: u64,
    generation: u64,
}

#[derive(Default)]
pub(crate) struct VerifiedTokens {
    entries: RwLock<HashMap<[u8; 32], Entry>>,
}

impl VerifiedTokens {
    pub(crate) fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    pub(crate) fn get(&self, digest: &[u8; 32], generation: u64) -> Option<Principal> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(digest)?;
        (entry.generation == generation && unix_now() <= entry.until).then(|| entry.principal.clone())
    }

    pub(crate) fn insert(&self, digest: [u8; 32], principal: &Principal, until: u64, generation: u64) {
        let Ok(mut entries) = self.entries.write() else { return };
        if entries.len() >= MAX_ENTRIES {
            let now = unix_now();
            entries.retain(|_, e| e.until >= now && e.generation == generation);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(digest, Entry { principal: principal.clone(), until, generation });
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::AuthMethod;

    #[test]
    fn entries_die_with_the_token_or_the_keys() {
        let cache = VerifiedTokens::default();
        let p = Principal::new("alice", AuthMethod::Jwt);
        let live = VerifiedTokens::digest("live");
        let dead = VerifiedTokens::digest("dead");
        cache.insert(live, &p, unix_now() + 60, 1);
        cache.insert(dead, &p, unix_now() - 1, 1);
        assert_eq!(cache.get(&live, 1), Some(p));
        assert_eq!(cache.get(&dead, 1), None);
        assert_eq!(cache.get(&live, 2), None, "keys were refetched");
        assert_eq!(cache.get(&VerifiedTokens::digest("other"), 1), None);
    }
}
