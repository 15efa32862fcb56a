//! Redaction of secrets and URL passwords in `Debug` output and errors.
//!
//! Owns: [`redact_url`] and the `Debug` helper the sections share.
//! Must not: know which section holds what beyond the names it is given.

use std::fmt;

use serde::Serialize;

/// `Debug` of a config section through its serialized form, with the
/// values of `secrets` replaced (when set) and the passwords of the URLs
/// in `urls` hidden: sections may grow fields without leaking new ones
/// the derive would print.
pub(super) fn redacted_debug<T: Serialize>(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    v: &T,
    secrets: &[&str],
    urls: &[&str],
) -> fmt::Result {
    let mut j = serde_json::to_value(v).map_err(|_| fmt::Error)?;
    if let Some(m) = j.as_object_mut() {
        for k in secrets {
            if let Some(x) = m.get_mut(*k) {
                if x.as_str().is_some_and(|s| !s.is_empty()) {
                    *x = serde_json::Value::String("<redacted>".into());
                }
            }
        }
        for k in urls {
            if let Some(x) = m.get_mut(*k) {
                if let Some(s) = x.as_str() {
                    *x = serde_json::Value::String(redact_url(s));
                }
            }
        }
    }
    write!(f, "{name} {j}")
}

/// `url` with its password (userinfo after `:`, or a `password=` query
/// value) replaced by `<redacted>`: safe for logs and errors.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let auth_start = scheme_end + 3;
        let auth_end = out[auth_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| auth_start + i);
        if let Some(at) = out[auth_start..auth_end].rfind('@') {
            let userinfo = &out[auth_start..auth_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(auth_start + colon + 1..auth_start + at, "<redacted>");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.to_ascii_lowercase().contains("pass") => {
                    format!("{k}=<redacted>")
                }
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}
