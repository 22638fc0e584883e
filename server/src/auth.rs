//! Accounts and authentication.
//!
//! - Passwords are stored as PBKDF2-HMAC-SHA256 with a random salt.
//! - A login (Flight handshake with Basic credentials) opens a session: an opaque random token
//!   with a lease. Using it within the lease renews it; once expired the caller must log in again.
//! - `Bearer <token>` is a session token, a JWT (HS256) signed with `jwt_secret`, or the shared
//!   secret itself (a static token with system rights).
//! - With no root password configured the server runs open: requests without credentials act
//!   as `root`. Setting `KALAMDB_ROOT_PASSWORD` makes credentials mandatory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::AuthSection;
use crate::session::{Principal, Role};
use crate::storage::{Catalog, UserEntry, now_ms};

pub const ROOT: &str = "root";
const PBKDF2_ROUNDS: u32 = 20_000;
const PASSWORD_BYTES_MAX: usize = 1024;

/// Why a request was not authenticated. The message says what to do; it never repeats a secret.
#[derive(Debug)]
pub struct AuthError(pub String);

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn pbkdf2(password: &[u8], salt: &[u8]) -> [u8; 32] {
    let mut u = hmac_sha256(password, &[salt, &1u32.to_be_bytes()]);
    let mut out = u;
    for _ in 1..PBKDF2_ROUNDS {
        u = hmac_sha256(password, &[&u]);
        out.iter_mut().zip(u.iter()).for_each(|(o, x)| *o ^= x);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes
}

fn equal_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `(hash, salt)`, both hex.
pub fn hash_password(password: &str) -> (String, String) {
    let salt = random_bytes::<16>();
    (hex(&pbkdf2(password.as_bytes(), &salt)), hex(&salt))
}

fn verify_password(password: &str, user: &UserEntry) -> bool {
    if user.password_hash.is_empty() {
        return false;
    }
    let salt: Vec<u8> = (0..user.salt.len() / 2)
        .filter_map(|i| u8::from_str_radix(&user.salt[2 * i..2 * i + 2], 16).ok())
        .collect();
    equal_constant_time(hex(&pbkdf2(password.as_bytes(), &salt)).as_bytes(), user.password_hash.as_bytes())
}

pub fn check_password(password: &str) -> Result<(), String> {
    if password.is_empty() || password.len() > PASSWORD_BYTES_MAX {
        return Err(format!("a password must have 1 to {PASSWORD_BYTES_MAX} bytes"));
    }
    Ok(())
}

/// Makes sure `root` exists with the configured password (or none: open server).
pub fn bootstrap_root(catalog: &mut Catalog, root_password: Option<&str>) {
    let entry = catalog.users.entry(ROOT.to_string()).or_insert_with(|| UserEntry {
        role: Role::System,
        password_hash: String::new(),
        salt: String::new(),
        created_ms: now_ms(),
    });
    entry.role = Role::System;
    match root_password {
        Some(password) if !verify_password(password, entry) => {
            (entry.password_hash, entry.salt) = hash_password(password);
        }
        Some(_) => {}
        None => {
            entry.password_hash.clear();
            entry.salt.clear();
        }
    }
}

struct SessionEntry {
    principal: Principal,
    opened_ms: i64,
    expires: Instant,
    last_used_ms: i64,
}

/// A session as `system.sessions` shows it.
pub struct SessionInfo {
    pub user: String,
    pub role: Role,
    pub opened_ms: i64,
    pub last_used_ms: i64,
    pub expires_in_secs: u64,
}

/// Open sessions and the settings of authentication.
pub struct Sessions {
    sessions: Mutex<HashMap<String, SessionEntry>>,
    lease: Duration,
    sessions_max: usize,
    jwt_secret: Option<String>,
    open: bool,
}

impl Sessions {
    pub fn new(config: &AuthSection) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            lease: Duration::from_secs(config.session_lease_secs),
            sessions_max: config.sessions_max,
            jwt_secret: config.jwt_secret.clone(),
            open: config.root_password.is_none(),
        }
    }

    /// How long a session token stays valid after its last use.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionEntry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks a user name and password against the accounts.
    pub fn verify(&self, catalog: &Catalog, user: &str, password: &str) -> Result<Principal, AuthError> {
        match catalog.users.get(user) {
            Some(entry) if verify_password(password, entry) => {
                Ok(Principal { user: user.to_string(), role: entry.role })
            }
            _ => Err(AuthError("authentication failed: wrong user name or password".into())),
        }
    }

    /// Opens a session; returns its token.
    pub fn open_session(&self, principal: Principal) -> Result<String, AuthError> {
        let mut sessions = self.lock();
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= self.sessions_max {
            return Err(AuthError(format!(
                "too many open sessions ({}); reuse your session token or try again later",
                self.sessions_max
            )));
        }
        let token = hex(&random_bytes::<32>());
        let ms = now_ms();
        sessions.insert(
            token.clone(),
            SessionEntry { principal, opened_ms: ms, expires: now + self.lease, last_used_ms: ms },
        );
        Ok(token)
    }

    /// The principal of a session token, renewing its lease.
    fn use_session(&self, token: &str) -> Option<Result<Principal, AuthError>> {
        let mut sessions = self.lock();
        let entry = sessions.get_mut(token)?;
        let now = Instant::now();
        if entry.expires <= now {
            sessions.remove(token);
            return Some(Err(AuthError(
                "the session expired: log in again (Flight handshake with Basic credentials)".into(),
            )));
        }
        entry.expires = now + self.lease;
        entry.last_used_ms = now_ms();
        Some(Ok(entry.principal.clone()))
    }

    /// Closes every session of a user (password or role changed, account dropped).
    pub fn forget_user(&self, user: &str) {
        self.lock().retain(|_, s| s.principal.user != user);
    }

    pub fn list(&self) -> Vec<SessionInfo> {
        let now = Instant::now();
        self.lock()
            .values()
            .filter(|s| s.expires > now)
            .map(|s| SessionInfo {
                user: s.principal.user.clone(),
                role: s.principal.role,
                opened_ms: s.opened_ms,
                last_used_ms: s.last_used_ms,
                expires_in_secs: (s.expires - now).as_secs(),
            })
            .collect()
    }

    /// The caller of a request, from its `authorization` header (if any).
    pub fn authenticate(
        &self,
        catalog: &Catalog,
        authorization: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let Some(header) = authorization else {
            if self.open {
                return Ok(Principal { user: ROOT.into(), role: Role::System });
            }
            return Err(AuthError(
                "this server needs credentials: log in with Basic user:password (Flight handshake) or send \
                 'authorization: Bearer <token>'"
                    .into(),
            ));
        };
        if let Some(encoded) = strip_scheme(header, "Basic") {
            // Padding is optional: some clients (Go's Flight client) send it unpadded.
            let encoded = encoded.trim().trim_end_matches('=');
            let decoded = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(encoded)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded))
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    AuthError("malformed Basic credentials: send base64 of user:password".into())
                })?;
            let (user, password) = decoded.split_once(':').ok_or_else(|| {
                AuthError("malformed Basic credentials: send base64 of user:password".into())
            })?;
            return self.verify(catalog, user, password);
        }
        let Some(token) = bearer_token(header) else {
            return Err(AuthError("unsupported authorization scheme: use Basic or Bearer".into()));
        };
        if let Some(result) = self.use_session(token) {
            return result;
        }
        if let Some(secret) = &self.jwt_secret {
            if equal_constant_time(token.as_bytes(), secret.as_bytes()) {
                return Ok(Principal { user: ROOT.into(), role: Role::System });
            }
            if token.matches('.').count() == 2 {
                return verify_jwt(token, secret, catalog);
            }
        }
        Err(AuthError(
            "unknown or expired session token: log in again (Flight handshake with Basic credentials)".into(),
        ))
    }
}

/// The token of an `authorization: Bearer <token>` header.
pub fn bearer_token(header: &str) -> Option<&str> {
    strip_scheme(header, "Bearer").map(str::trim)
}

fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// Verifies an HS256 JWT; the account is `sub`, the role the account's (or the `role` claim
/// for names that are not accounts; `user` if absent).
fn verify_jwt(token: &str, secret: &str, catalog: &Catalog) -> Result<Principal, AuthError> {
    let bad = |why: &str| AuthError(format!("invalid token: {why}"));
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (header, payload, signature) =
        (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let header: serde_json::Value =
        serde_json::from_slice(&b64.decode(header).map_err(|_| bad("malformed"))?)
            .map_err(|_| bad("malformed"))?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(bad("only HS256 tokens are accepted"));
    }
    let expected = hmac_sha256(
        secret.as_bytes(),
        &[format!("{}.{}", token.split('.').next().unwrap_or(""), payload).as_bytes()],
    );
    let given = b64.decode(signature).map_err(|_| bad("malformed signature"))?;
    if !equal_constant_time(&expected, &given) {
        return Err(bad("the signature does not match"));
    }
    let claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(payload).map_err(|_| bad("malformed"))?)
            .map_err(|_| bad("malformed"))?;
    if let Some(exp) = claims.get("exp").and_then(|e| e.as_i64())
        && exp * 1000 < now_ms()
    {
        return Err(AuthError("the token expired: get a new one".into()));
    }
    let user = claims.get("sub").and_then(|s| s.as_str()).ok_or_else(|| bad("no sub claim"))?.to_string();
    let role = match catalog.users.get(&user) {
        Some(entry) => entry.role,
        None => claims.get("role").and_then(|r| r.as_str()).and_then(Role::parse).unwrap_or(Role::User),
    };
    Ok(Principal { user, role })
}

/// Signs an HS256 JWT (tests and tools).
pub fn sign_jwt(claims: &serde_json::Value, secret: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64.encode(claims.to_string());
    let signature = hmac_sha256(secret.as_bytes(), &[format!("{head}.{body}").as_bytes()]);
    format!("{head}.{body}.{}", b64.encode(signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: a password verifies only against its own hash; JWTs verify only with the secret.
    #[test]
    fn passwords_and_tokens() {
        let (hash, salt) = hash_password("s3cret");
        let user = UserEntry { role: Role::User, password_hash: hash, salt, created_ms: 0 };
        assert!(verify_password("s3cret", &user));
        assert!(!verify_password("s3cret ", &user));
        let catalog = Catalog::empty_for_tests();
        let token = sign_jwt(&serde_json::json!({"sub": "ana", "role": "dba"}), "k");
        let principal = verify_jwt(&token, "k", &catalog).unwrap();
        assert_eq!((principal.user.as_str(), principal.role), ("ana", Role::Dba));
        assert!(verify_jwt(&token, "other", &catalog).is_err());
        let expired = sign_jwt(&serde_json::json!({"sub": "ana", "exp": 1}), "k");
        assert!(verify_jwt(&expired, "k", &catalog).unwrap_err().0.contains("expired"));
    }
}
