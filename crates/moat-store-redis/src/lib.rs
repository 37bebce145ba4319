//! The Redis backend of Moat's state store (`[store] url = "redis://…"`), for several
//! gateway replicas that share sessions, pins, API keys and rate-limit buckets.
//!
//! Every read-modify-write (touching a session, approving a pin, taking a token) is one
//! Lua script, so it is atomic across replicas without WATCH/MULTI round trips. Sessions
//! and buckets carry Redis expiries, so Redis deletes them on time by itself.
//!
//! Audit records are not kept here ([`Store::audit`] is `None`): an append-only,
//! hash-chained log belongs in a file or in SQLite next to each replica.
//!
//! # Keys
//!
//! Every key starts with a prefix (`moat:` by default). Composite keys encode their parts
//! as a JSON array (`moat:pin:["github","tool","create_issue"]`), which is unambiguous
//! whatever characters the parts contain.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Script};

use moat_store::{
    ApiKeyRecord, ApiKeyStore, AuditStore, PinKey, PinKind, PinRecord, PinState, PinStore, RateDecision,
    RateLimitStore, SessionKey, SessionRecord, SessionStore, Store, StoreError, UnixMillis,
};

const BACKEND: &str = "redis";

/// A Redis store. Cheap to clone: clones share one multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: MultiplexedConnection,
    prefix: Arc<str>,
    scripts: Arc<Scripts>,
}

struct Scripts {
    touch: Script,
    approve: Script,
    revoke: Script,
    take: Script,
    create_key: Script,
    revoke_key: Script,
}

impl RedisStore {
    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`, or `rediss://` for
    /// TLS where the redis crate was built with it) with keys under `prefix`.
    ///
    /// # Errors
    /// A backend error when the URL is invalid or the server cannot be reached. The
    /// message never contains the URL, which may hold a password.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::backend(BACKEND, format!("invalid redis url ({:?})", e.kind())))?;
        let conn = client.get_multiplexed_async_connection().await.map_err(redis_err)?;
        Ok(RedisStore {
            conn,
            prefix: Arc::from(prefix),
            scripts: Arc::new(Scripts {
                touch: Script::new(TOUCH_SESSION),
                approve: Script::new(APPROVE_PIN),
                revoke: Script::new(REVOKE_PIN),
                take: Script::new(TAKE_TOKEN),
                create_key: Script::new(CREATE_API_KEY),
                revoke_key: Script::new(REVOKE_API_KEY),
            }),
        })
    }

    fn key(&self, kind: &str, parts: &[&str]) -> String {
        let parts = serde_json::to_string(parts).unwrap_or_default();
        format!("{}{kind}:{parts}", self.prefix)
    }

    fn session_key(&self, key: &SessionKey) -> String {
        self.key("session", &[&key.principal, &key.session])
    }

    fn sid_key(&self, session: &str) -> String {
        format!("{}sid:{session}", self.prefix)
    }

    fn pin_member(key: &PinKey) -> String {
        serde_json::to_string(&[key.upstream.as_str(), key.kind.as_str(), key.name.as_str()]).unwrap_or_default()
    }

    fn pin_key(&self, key: &PinKey) -> String {
        format!("{}pin:{}", self.prefix, Self::pin_member(key))
    }

    fn pin_index(&self) -> String {
        format!("{}pins", self.prefix)
    }

    fn api_key_key(&self, key_id: &str) -> String {
        format!("{}apikey:{key_id}", self.prefix)
    }

    fn api_key_index(&self) -> String {
        format!("{}apikeys", self.prefix)
    }
}

fn redis_err(e: redis::RedisError) -> StoreError {
    // The error's Display can include the server's reply but never the URL.
    StoreError::backend(BACKEND, e)
}

fn corrupt(what: &'static str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { what, reason: reason.to_string() }
}

fn field<'a>(h: &'a HashMap<String, String>, name: &str, what: &'static str) -> Result<&'a str, StoreError> {
    h.get(name).map(String::as_str).ok_or_else(|| corrupt(what, format!("missing field `{name}`")))
}

fn int_field(h: &HashMap<String, String>, name: &str, what: &'static str) -> Result<i64, StoreError> {
    field(h, name, what)?.parse().map_err(|_| corrupt(what, format!("field `{name}` is not a number")))
}

impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn audit(&self) -> Option<Arc<dyn AuditStore>> {
        None
    }
}

// ---------------------------------------------------------------------------------------
// Sessions

/// KEYS[1] session hash, KEYS[2] session-id index; ARGV[1] now. Returns the updated hash
/// (HGETALL), or nothing when absent or expired (then deleted).
const TOUCH_SESSION: &str = r"
local v = redis.call('HMGET', KEYS[1], 'created', 'last_seen', 'idle', 'max')
if not v[1] then return {} end
local now = tonumber(ARGV[1])
local created, last, idle, max = tonumber(v[1]), tonumber(v[2]), tonumber(v[3]), tonumber(v[4])
if now >= math.min(last + idle, created + max) then
  redis.call('DEL', KEYS[1], KEYS[2])
  return {}
end
if now > last then last = now end
local exp = math.min(last + idle, created + max)
redis.call('HSET', KEYS[1], 'last_seen', string.format('%d', last))
redis.call('PEXPIREAT', KEYS[1], string.format('%d', exp))
redis.call('PEXPIREAT', KEYS[2], string.format('%d', exp))
return redis.call('HGETALL', KEYS[1])
";

fn session_from_hash(h: &HashMap<String, String>) -> Result<SessionRecord, StoreError> {
    const W: &str = "session";
    let idle = int_field(h, "idle", W)?;
    let max = int_field(h, "max", W)?;
    Ok(SessionRecord {
        principal: field(h, "principal", W)?.to_owned(),
        session: field(h, "session", W)?.to_owned(),
        created: UnixMillis(int_field(h, "created", W)?),
        last_seen: UnixMillis(int_field(h, "last_seen", W)?),
        idle_timeout_ms: u64::try_from(idle).map_err(|e| corrupt(W, e))?,
        max_lifetime_ms: u64::try_from(max).map_err(|e| corrupt(W, e))?,
        protocol_version: field(h, "protocol_version", W)?.to_owned(),
        client_info: serde_json::from_str(field(h, "client_info", W)?).map_err(|e| corrupt(W, e))?,
    })
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn put_session(&self, r: &SessionRecord) -> Result<(), StoreError> {
        let key = self.session_key(&r.key());
        let exp = r.expires_at().0;
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .del(&key)
            .hset_multiple(
                &key,
                &[
                    ("principal", r.principal.clone()),
                    ("session", r.session.clone()),
                    ("created", r.created.0.to_string()),
                    ("last_seen", r.last_seen.0.to_string()),
                    ("idle", r.idle_timeout_ms.to_string()),
                    ("max", r.max_lifetime_ms.to_string()),
                    ("protocol_version", r.protocol_version.clone()),
                    ("client_info", r.client_info.to_string()),
                ],
            )
            .cmd("PEXPIREAT")
            .arg(&key)
            .arg(exp)
            .cmd("SET")
            .arg(self.sid_key(&r.session))
            .arg(&r.principal)
            .arg("PXAT")
            .arg(exp)
            .exec_async(&mut conn)
            .await
            .map_err(redis_err)
    }

    async fn get_session(&self, key: &SessionKey, now: UnixMillis) -> Result<Option<SessionRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let h: HashMap<String, String> = conn.hgetall(self.session_key(key)).await.map_err(redis_err)?;
        if h.is_empty() {
            return Ok(None);
        }
        let r = session_from_hash(&h)?;
        if r.is_live(now) {
            Ok(Some(r))
        } else {
            self.delete_session(key).await?;
            Ok(None)
        }
    }

    async fn touch_session(&self, key: &SessionKey, now: UnixMillis) -> Result<Option<SessionRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let h: HashMap<String, String> = self
            .scripts
            .touch
            .key(self.session_key(key))
            .key(self.sid_key(&key.session))
            .arg(now.0)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        if h.is_empty() {
            return Ok(None);
        }
        session_from_hash(&h).map(Some)
    }

    async fn delete_session(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let sid = self.sid_key(&key.session);
        let owner: Option<String> = conn.get(&sid).await.map_err(redis_err)?;
        let mut pipe = redis::pipe();
        pipe.atomic().del(self.session_key(key));
        if owner.as_deref() == Some(key.principal.as_str()) {
            pipe.del(&sid).ignore();
        }
        let (n,): (u64,) = pipe.query_async(&mut conn).await.map_err(redis_err)?;
        Ok(n > 0)
    }

    async fn session_owner(&self, session: &str, now: UnixMillis) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        let owner: Option<String> = conn.get(self.sid_key(session)).await.map_err(redis_err)?;
        let Some(owner) = owner else { return Ok(None) };
        let key = SessionKey::new(owner.clone(), session);
        Ok(self.get_session(&key, now).await?.map(|_| owner))
    }

    async fn purge_expired_sessions(&self, _now: UnixMillis) -> Result<u64, StoreError> {
        // Redis deletes each session at its PEXPIREAT deadline by itself; a session whose
        // deadline passed on the caller's clock but not yet on Redis's reads as absent.
        Ok(0)
    }
}

// ---------------------------------------------------------------------------------------
// Pins

/// KEYS[1] pin hash; ARGV[1] expected hash, ARGV[2] now.
const APPROVE_PIN: &str = r"
if redis.call('HGET', KEYS[1], 'hash') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'approved', 'updated', ARGV[2])
redis.call('HDEL', KEYS[1], 'trusted_definition', 'trusted_hash')
return 1
";

/// KEYS[1] pin hash; ARGV[1] now.
const REVOKE_PIN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'quarantined', 'updated', ARGV[1])
return 1
";

fn pin_from_hash(key: PinKey, h: &HashMap<String, String>) -> Result<PinRecord, StoreError> {
    const W: &str = "pin";
    let state = field(h, "state", W)?;
    Ok(PinRecord {
        key,
        state: PinState::parse(state).ok_or_else(|| corrupt(W, format!("unknown state `{state}`")))?,
        definition: field(h, "definition", W)?.to_owned(),
        hash: field(h, "hash", W)?.to_owned(),
        trusted_definition: h.get("trusted_definition").cloned(),
        trusted_hash: h.get("trusted_hash").cloned(),
        first_seen: UnixMillis(int_field(h, "first_seen", W)?),
        updated: UnixMillis(int_field(h, "updated", W)?),
    })
}

fn pin_key_from_member(member: &str) -> Result<PinKey, StoreError> {
    let parts: Vec<String> = serde_json::from_str(member).map_err(|e| corrupt("pin index", e))?;
    match parts.as_slice() {
        [upstream, kind, name] => Ok(PinKey {
            upstream: upstream.clone(),
            kind: PinKind::parse(kind).ok_or_else(|| corrupt("pin index", format!("unknown kind `{kind}`")))?,
            name: name.clone(),
        }),
        _ => Err(corrupt("pin index", "expected three parts")),
    }
}

#[async_trait]
impl PinStore for RedisStore {
    async fn get_pin(&self, key: &PinKey) -> Result<Option<PinRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let h: HashMap<String, String> = conn.hgetall(self.pin_key(key)).await.map_err(redis_err)?;
        if h.is_empty() {
            return Ok(None);
        }
        pin_from_hash(key.clone(), &h).map(Some)
    }

    async fn put_pin(&self, r: &PinRecord) -> Result<(), StoreError> {
        let key = self.pin_key(&r.key);
        let mut fields = vec![
            ("state", r.state.as_str().to_owned()),
            ("definition", r.definition.clone()),
            ("hash", r.hash.clone()),
            ("first_seen", r.first_seen.0.to_string()),
            ("updated", r.updated.0.to_string()),
        ];
        if let Some(d) = &r.trusted_definition {
            fields.push(("trusted_definition", d.clone()));
        }
        if let Some(h) = &r.trusted_hash {
            fields.push(("trusted_hash", h.clone()));
        }
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .del(&key)
            .hset_multiple(&key, &fields)
            .sadd(self.pin_index(), Self::pin_member(&r.key))
            .exec_async(&mut conn)
            .await
            .map_err(redis_err)
    }

    async fn list_pins(&self, upstream: Option<&str>) -> Result<Vec<PinRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = conn.smembers(self.pin_index()).await.map_err(redis_err)?;
        let mut keys = Vec::new();
        for m in &members {
            let k = pin_key_from_member(m)?;
            if upstream.is_none_or(|u| k.upstream == u) {
                keys.push(k);
            }
        }
        keys.sort();
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.hgetall(self.pin_key(k));
        }
        let hashes: Vec<HashMap<String, String>> =
            if keys.is_empty() { Vec::new() } else { pipe.query_async(&mut conn).await.map_err(redis_err)? };
        let mut out = Vec::new();
        for (k, h) in keys.into_iter().zip(hashes) {
            // A pin deleted between SMEMBERS and HGETALL is skipped.
            if !h.is_empty() {
                out.push(pin_from_hash(k, &h)?);
            }
        }
        Ok(out)
    }

    async fn approve_pin(&self, key: &PinKey, hash: &str, now: UnixMillis) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let n: i64 = self
            .scripts
            .approve
            .key(self.pin_key(key))
            .arg(hash)
            .arg(now.0)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(n == 1)
    }

    async fn revoke_pin(&self, key: &PinKey, now: UnixMillis) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let n: i64 =
            self.scripts.revoke.key(self.pin_key(key)).arg(now.0).invoke_async(&mut conn).await.map_err(redis_err)?;
        Ok(n == 1)
    }

    async fn delete_pin(&self, key: &PinKey) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let (n,): (u64,) = redis::pipe()
            .atomic()
            .del(self.pin_key(key))
            .srem(self.pin_index(), Self::pin_member(key))
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(n > 0)
    }
}

// ---------------------------------------------------------------------------------------
// Rate limits

/// The token bucket of `moat_store::token_bucket_step`, in Lua. KEYS[1] bucket; ARGV[1]
/// capacity, ARGV[2] refill per second, ARGV[3] now. Returns {allowed, remaining,
/// retry_after_ms (-1: never)}. The bucket expires once it would be full again, since a
/// missing bucket reads as full.
const TAKE_TOKEN: &str = r"
local cap, rate, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if rate < 0 then rate = 0 end
local v = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens, last
if v[1] then
  tokens, last = tonumber(v[1]), tonumber(v[2])
  local elapsed = now - last
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(cap, tokens + elapsed / 1000 * rate)
  if now > last then last = now end
else
  tokens, last = cap, now
end
local allowed, retry = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
elseif rate > 0 then
  retry = math.ceil((1 - tokens) / rate * 1000)
else
  retry = -1
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'u', string.format('%d', last))
if rate > 0 then
  redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) / rate * 1000) + 1000)
end
return {allowed, math.floor(tokens), retry}
";

#[async_trait]
impl RateLimitStore for RedisStore {
    async fn take(
        &self,
        key: &str,
        capacity: u32,
        refill_per_sec: f64,
        now: UnixMillis,
    ) -> Result<RateDecision, StoreError> {
        let mut conn = self.conn.clone();
        let (allowed, remaining, retry): (i64, i64, i64) = self
            .scripts
            .take
            .key(format!("{}rl:{key}", self.prefix))
            .arg(capacity)
            .arg(format!("{refill_per_sec:?}"))
            .arg(now.0)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(RateDecision {
            allowed: allowed == 1,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            retry_after_ms: u64::try_from(retry).unwrap_or(u64::MAX),
        })
    }
}

// ---------------------------------------------------------------------------------------
// API keys

/// KEYS[1] key hash, KEYS[2] index; ARGV[1] key id, then field/value pairs.
const CREATE_API_KEY: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SADD', KEYS[2], ARGV[1])
return 1
";

/// KEYS[1] key hash; ARGV[1] now.
const REVOKE_API_KEY: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'revoked') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'revoked', ARGV[1])
return 1
";

fn api_key_from_hash(key_id: &str, h: &HashMap<String, String>) -> Result<ApiKeyRecord, StoreError> {
    const W: &str = "api key";
    Ok(ApiKeyRecord {
        key_id: key_id.to_owned(),
        salt: field(h, "salt", W)?.to_owned(),
        hash: field(h, "hash", W)?.to_owned(),
        principal: field(h, "principal", W)?.to_owned(),
        roles: serde_json::from_str(field(h, "roles", W)?).map_err(|e| corrupt(W, e))?,
        description: field(h, "description", W)?.to_owned(),
        created: UnixMillis(int_field(h, "created", W)?),
        revoked: match h.get("revoked") {
            Some(_) => Some(UnixMillis(int_field(h, "revoked", W)?)),
            None => None,
        },
    })
}

#[async_trait]
impl ApiKeyStore for RedisStore {
    async fn create_api_key(&self, r: &ApiKeyRecord) -> Result<(), StoreError> {
        let roles = serde_json::to_string(&r.roles).map_err(|e| StoreError::backend(BACKEND, e))?;
        let mut conn = self.conn.clone();
        let mut invocation = self.scripts.create_key.key(self.api_key_key(&r.key_id));
        invocation
            .key(self.api_key_index())
            .arg(&r.key_id)
            .arg("salt")
            .arg(&r.salt)
            .arg("hash")
            .arg(&r.hash)
            .arg("principal")
            .arg(&r.principal)
            .arg("roles")
            .arg(roles)
            .arg("description")
            .arg(&r.description)
            .arg("created")
            .arg(r.created.0);
        if let Some(t) = r.revoked {
            invocation.arg("revoked").arg(t.0);
        }
        let n: i64 = invocation.invoke_async(&mut conn).await.map_err(redis_err)?;
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict { what: "api key", key: r.key_id.clone() })
        }
    }

    async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let h: HashMap<String, String> = conn.hgetall(self.api_key_key(key_id)).await.map_err(redis_err)?;
        if h.is_empty() {
            return Ok(None);
        }
        api_key_from_hash(key_id, &h).map(Some)
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let mut ids: Vec<String> = conn.smembers(self.api_key_index()).await.map_err(redis_err)?;
        ids.sort();
        let mut out = Vec::new();
        for id in ids {
            if let Some(r) = self.get_api_key(&id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn revoke_api_key(&self, key_id: &str, now: UnixMillis) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let n: i64 = self
            .scripts
            .revoke_key
            .key(self.api_key_key(key_id))
            .arg(now.0)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(n == 1)
    }
}
