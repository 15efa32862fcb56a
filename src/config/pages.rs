//! `[pages]`: the browser pages (viewer page, demo login) and their
//! session cookies.
//!
//! Owns: [`PagesConfig`], its defaults (equal to `config/default.toml`) and
//! its validation. Must not: read anything but its own fields.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[pages]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagesConfig {
    /// Longest life of a page session (`POST /v1/sessions`), seconds; a
    /// session never outlives the token it was made from.
    pub session_ttl_s_max: u64,
    /// Always mark the session cookie `Secure`. Without it the cookie is
    /// `Secure` when the request came over https (the URI's scheme, or
    /// `X-Forwarded-Proto: https` from a proxy).
    pub cookie_secure: bool,
    /// Set by `serve --demo` only (never read from a file): serves
    /// `/demo/login`, which hands out demo sessions.
    #[serde(skip)]
    pub demo: bool,
}

impl Default for PagesConfig {
    fn default() -> Self {
        PagesConfig {
            session_ttl_s_max: 43_200,
            cookie_secure: false,
            demo: false,
        }
    }
}

impl PagesConfig {
    /// Ranges: a session lives at least a minute and at most a week.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(60..=604_800).contains(&self.session_ttl_s_max) {
            return Err(ConfigError {
                key: "pages.session_ttl_s_max".into(),
                message: "must be 60..=604800 (a minute to a week)".into(),
            });
        }
        Ok(())
    }
}
