//! The browser pages: the viewer page `/live/{room}`, the video page
//! `/videos/{video}`, the creator studio `/studio`, the Creator
//! Marketplace's pages `/marketplace` (creators) and `/brand` (brands), the demo login
//! `/demo/login` (`serve --demo` only) and their static files under
//! `/ui/...` (CSS, ES modules, one string catalog per language), all
//! embedded in the binary from `web/`.
//!
//! Owns: the table of page files and their headers (a strict CSP: scripts,
//! styles, images and sockets from this origin only, no inline code, no
//! framing), the page language (`gs_lang` cookie, else `Accept-Language`,
//! else English) and the server-side filling of a page's strings from
//! its catalog (HTML-escaped).
//! Adding a page: its HTML in `web/` (strings
//! as `{{t:KEY}}`, every KEY in each `web/i18n/*.json`), its module in
//! `web/` importing the shell `/ui/common.js` (strings, session and CSRF,
//! `api()`, the text-only `el()` builder, the header), an entry in
//! `FILES`, a handler here like [`live`], and its route in `http::ROUTES`.
//! Must not: put data or tokens in a page (pages fetch what they show
//! through the JSON routes, signed in by the session cookie), read files
//! at request time, or serve anything not listed here.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Shared;
use crate::error::{Error, ErrorCode};
use crate::protocol::check_name;

/// The languages of the pages, the first the default; each has
/// `web/i18n/{lang}.json`.
pub const LANGS: [&str; 2] = ["en", "fr"];

/// `(lang, catalog JSON)`: every string of the pages, one file a language.
const CATALOGS: [(&str, &str); 2] = [
    ("en", include_str!("../../web/i18n/en.json")),
    ("fr", include_str!("../../web/i18n/fr.json")),
];

/// `(name under /ui/, content type, body)`.
const FILES: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../web/app.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/common.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/live.js"),
    ),
    (
        "studio.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/studio.js"),
    ),
    (
        "studio-parts.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/studio-parts.js"),
    ),
    (
        "studio-moderation.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/studio-moderation.js"),
    ),
    (
        "pay.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/pay.js"),
    ),
    (
        "kept-back.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/kept-back.js"),
    ),
    (
        "video.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/video.js"),
    ),
    (
        "marketplace.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/marketplace.js"),
    ),
    (
        "brand.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/brand.js"),
    ),
    (
        "market-common.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/market-common.js"),
    ),
    (
        "market-contracts.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/market-contracts.js"),
    ),
    (
        "login.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/login.js"),
    ),
    (
        "i18n/en.json",
        "application/json",
        include_str!("../../web/i18n/en.json"),
    ),
    (
        "i18n/fr.json",
        "application/json",
        include_str!("../../web/i18n/fr.json"),
    ),
];

const LIVE_HTML: &str = include_str!("../../web/live.html");
const LOGIN_HTML: &str = include_str!("../../web/login.html");
const STUDIO_HTML: &str = include_str!("../../web/studio.html");
const VIDEO_HTML: &str = include_str!("../../web/video.html");
const MARKETPLACE_HTML: &str = include_str!("../../web/marketplace.html");
const BRAND_HTML: &str = include_str!("../../web/brand.html");

/// Page files change with releases: an hour, like the SDK.
const UI_CACHE: &str = "public, max-age=3600";

/// The CSP of every page: nothing inline, nothing from elsewhere.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The studio's CSP: [`PAGE_CSP`] plus same-origin frames (the overlay's
/// live preview).
pub const STUDIO_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; frame-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Whether the pages take payments: Stripe on, with a publishable key.
fn pays(cfg: &crate::config::Config) -> bool {
    cfg.stripe.enabled() && !cfg.stripe.publishable_key.is_empty()
}

/// `scheme://host[:port]` of an http(s) URL.
fn origin(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let host_len = rest.find('/').unwrap_or(rest.len());
    let end = url.len() - rest.len() + host_len;
    (host_len > 0 && !rest[..host_len].contains(['\'', '"', ' ', ';', ','])).then(|| &url[..end])
}

/// The CSP of a page that pays: [`PAGE_CSP`] plus Stripe.js's origin (its
/// script, its frames, its API; for js.stripe.com also api.stripe.com and
/// hooks.stripe.com, as Stripe documents).
fn paying_csp(cfg: &crate::config::Config) -> String {
    let Some(o) = pays(cfg).then(|| origin(&cfg.stripe.js_url)).flatten() else {
        return PAGE_CSP.to_string();
    };
    let (api, hooks) = if o == "https://js.stripe.com" {
        (" https://api.stripe.com", " https://hooks.stripe.com")
    } else {
        ("", "")
    };
    format!(
        "default-src 'none'; script-src 'self' {o}; style-src 'self'; \
         connect-src 'self' {o}{api}; frame-src {o}{hooks}; img-src 'self'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    )
}

/// `GET /v1/coins/packages` (anyone): the coin packages for sale (each in
/// its currency; `currencies` lists those offered, `currency` the
/// default), and what the pages need to pay with Stripe.js (`stripe`:
/// `{publishable_key, js_url}`, null while the pages take no payment).
pub async fn packages(State(state): State<Shared>) -> axum::Json<serde_json::Value> {
    let st = &state.cfg.stripe;
    let stripe = pays(&state.cfg)
        .then(|| serde_json::json!({ "publishable_key": st.publishable_key, "js_url": st.js_url }));
    axum::Json(serde_json::json!({
        "packages": st.packages.iter().map(|p| serde_json::json!({
            "id": p.id, "coins": p.coins, "price_cents": p.price_cents, "currency": p.currency,
        })).collect::<Vec<_>>(),
        "currencies": st.currencies,
        "currency": st.currency,
        "stripe": stripe,
    }))
}

/// A language's strings, parsed once.
fn catalog(lang: &str) -> &'static HashMap<String, String> {
    static PARSED: OnceLock<Vec<(&'static str, HashMap<String, String>)>> = OnceLock::new();
    let all = PARSED.get_or_init(|| {
        CATALOGS
            .iter()
            .map(|(l, json)| {
                // Checked by the unit test below: a bad catalog fails the build's tests.
                (*l, serde_json::from_str(json).unwrap_or_default())
            })
            .collect()
    });
    all.iter()
        .find(|(l, _)| *l == lang)
        .or(all.first())
        .map(|(_, c)| c)
        .expect("CATALOGS is not empty")
}

/// The page language: the `gs_lang` cookie (the page's switch), else the
/// best `Accept-Language` entry we have, else English.
pub fn lang(headers: &HeaderMap) -> &'static str {
    let from_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "gs_lang")
        .and_then(|(_, v)| LANGS.iter().find(|l| **l == v.trim()));
    if let Some(l) = from_cookie {
        return l;
    }
    let mut best: Option<(f32, &'static str)> = None;
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for entry in accept.split(',') {
        let mut parts = entry.split(';');
        let tag = parts.next().unwrap_or("").trim();
        let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if let Some(l) = LANGS.iter().find(|l| **l == primary) {
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, l));
            }
        }
    }
    best.map_or(LANGS[0], |(_, l)| l)
}

/// HTML-escape text for an element's content or a quoted attribute.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Fill a page template: `{{lang}}`, `{{t:KEY}}` with the language's
/// string for KEY (escaped; the key itself when missing), and
/// `{{part:NAME}}` with a shared piece of the shells (see [`part`]),
/// itself rendered.
pub fn render(template: &str, lang: &str) -> String {
    let cat = catalog(lang);
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let key = &after[..j];
        if key == "lang" {
            out.push_str(lang);
        } else if let Some(html) = key.strip_prefix("part:").and_then(part) {
            // A part is a template too (one level: parts hold no parts).
            out.push_str(&render(html, lang));
        } else if let Some(k) = key.strip_prefix("t:") {
            out.push_str(&escape_html(cat.get(k).map_or(k, String::as_str)));
        } else {
            out.push_str(&rest[i..i + 2 + j + 2]);
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    out
}

/// The shared pieces of the page shells, by `{{part:NAME}}`.
fn part(name: &str) -> Option<&'static str> {
    match name {
        "account" => Some(include_str!("../../web/parts/account.html")),
        "pay" => Some(include_str!("../../web/parts/pay.html")),
        _ => None,
    }
}

/// A page's response: HTML, the page CSP, never cached (its language
/// follows the request).
pub fn page(html: String) -> Response {
    page_with_csp(html, HeaderValue::from_static(PAGE_CSP))
}

fn page_with_csp(html: String, csp: HeaderValue) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::VARY,
                HeaderValue::from_static("Accept-Language, Cookie"),
            ),
        ],
        html,
    )
        .into_response()
}

/// `GET /live/{room}` (anyone): the viewer page. It signs in by the
/// session cookie; without one it offers to sign in. When it takes
/// payments its CSP also allows Stripe.js.
pub async fn live(
    State(state): State<Shared>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    check_name("room", &room)
        .map_err(|_| Error::new(ErrorCode::UnknownRoom, format!("no room `{room}`")))?;
    let csp = HeaderValue::from_str(&paying_csp(&state.cfg))
        .map_err(|_| Error::internal("stripe.js_url makes no CSP header value"))?;
    Ok(page_with_csp(render(LIVE_HTML, lang(&headers)), csp))
}

/// `GET /studio` (anyone): the creator studio. It signs in by the session
/// cookie (a creator's); without one it offers to sign in.
pub async fn studio(headers: HeaderMap) -> Response {
    page_with_csp(
        render(STUDIO_HTML, lang(&headers)),
        HeaderValue::from_static(STUDIO_CSP),
    )
}

/// `GET /marketplace` (anyone): the creators' marketplace page
/// (eligibility, profile, open campaigns, applications, contracts). It
/// signs in by the session cookie (a creator's); without one it offers to
/// sign in.
pub async fn marketplace(headers: HeaderMap) -> Response {
    page(render(MARKETPLACE_HTML, lang(&headers)))
}

/// `GET /brand` (anyone): the brands' page (profile, campaigns,
/// applicants, invitations, contracts and their escrow payments). It signs
/// in by the session cookie (a brand's); without one it offers to sign in.
/// When it takes payments its CSP also allows Stripe.js (as [`live`]).
pub async fn brand(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, Error> {
    let csp = HeaderValue::from_str(&paying_csp(&state.cfg))
        .map_err(|_| Error::internal("stripe.js_url makes no CSP header value"))?;
    Ok(page_with_csp(render(BRAND_HTML, lang(&headers)), csp))
}

/// `GET /videos/{video}` (anyone): a video's page (gifts with their
/// messages, top supporters, the gift panel); an invalid id is 404.
pub async fn video(Path(video): Path<String>, headers: HeaderMap) -> Result<Response, Error> {
    check_name("video", &video)
        .map_err(|_| Error::new(ErrorCode::UnknownVideo, format!("no video `{video}`")))?;
    Ok(page(render(VIDEO_HTML, lang(&headers))))
}

/// `GET /demo/login` (`serve --demo` only, else 404): pick a demo user.
pub async fn demo_login(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(r) = super::session::not_demo(&state) {
        return r;
    }
    page(render(LOGIN_HTML, lang(&headers)))
}

/// `GET /ui/{asset}`: a page file (`i18n/en.json` is `/ui/i18n/en.json`).
pub async fn ui(Path(asset): Path<String>) -> Response {
    ui_file(&asset)
}

/// `GET /ui/i18n/{lang}`: a language's string catalog.
pub async fn ui_i18n(Path(file): Path<String>) -> Response {
    ui_file(&format!("i18n/{file}"))
}

fn ui_file(name: &str) -> Response {
    let Some((_, ctype, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return Error::bad_request("no such file").with_status(StatusCode::NOT_FOUND);
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ctype)),
            (header::CACHE_CONTROL, HeaderValue::from_static(UI_CACHE)),
        ],
        *body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogs_parse_and_have_the_same_keys() {
        let keys = |json: &str| {
            let m: HashMap<String, String> = serde_json::from_str(json).expect("catalog parses");
            let mut k: Vec<String> = m.into_keys().collect();
            k.sort();
            k
        };
        let en = keys(CATALOGS[0].1);
        assert!(en.len() > 20);
        for (l, json) in &CATALOGS[1..] {
            assert_eq!(keys(json), en, "{l} has exactly the keys of en");
        }
        for (name, html) in [
            ("live", LIVE_HTML),
            ("login", LOGIN_HTML),
            ("studio", STUDIO_HTML),
            ("video", VIDEO_HTML),
            ("marketplace", MARKETPLACE_HTML),
            ("brand", BRAND_HTML),
        ] {
            let mut rest = html;
            while let Some(i) = rest.find("{{t:") {
                let k = &rest[i + 4..i + 4 + rest[i + 4..].find("}}").unwrap()];
                assert!(en.iter().any(|e| e == k), "{name}.html: no string {k}");
                rest = &rest[i + 4..];
            }
            assert!(!html.contains("<script>"), "{name}: no inline script");
            assert!(!html.contains("style="), "{name}: no inline style");
        }
    }

    #[test]
    fn language_from_cookie_then_accept_language() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(*k, HeaderValue::from_static(v));
            }
            m
        };
        assert_eq!(lang(&h(&[])), "en");
        assert_eq!(
            lang(&h(&[("accept-language", "fr-FR,fr;q=0.9,en;q=0.8")])),
            "fr"
        );
        assert_eq!(
            lang(&h(&[("accept-language", "de-DE,en;q=0.5,fr;q=0.7")])),
            "fr"
        );
        assert_eq!(lang(&h(&[("accept-language", "de")])), "en");
        assert_eq!(
            lang(&h(&[
                ("accept-language", "fr"),
                ("cookie", "a=b; gs_lang=en")
            ])),
            "en"
        );
        assert_eq!(lang(&h(&[("cookie", "gs_lang=xx")])), "en");
    }

    #[test]
    fn csp_allows_stripe_js_only_when_paying() {
        let mut cfg = crate::config::Config::default();
        assert_eq!(paying_csp(&cfg), PAGE_CSP);
        cfg.stripe.secret_key = "sk_test_x".into();
        cfg.stripe.publishable_key = "pk_test_x".into();
        let csp = paying_csp(&cfg);
        assert!(
            csp.contains("script-src 'self' https://js.stripe.com;"),
            "{csp}"
        );
        assert!(
            csp.contains("frame-src https://js.stripe.com https://hooks.stripe.com;"),
            "{csp}"
        );
        assert!(
            csp.contains("connect-src 'self' https://js.stripe.com https://api.stripe.com;"),
            "{csp}"
        );
        cfg.stripe.js_url = "http://127.0.0.1:4242/js.stripe.com/v3/".into();
        assert!(paying_csp(&cfg).contains("script-src 'self' http://127.0.0.1:4242;"));
        assert_eq!(origin("https://a.b/c"), Some("https://a.b"));
        assert_eq!(origin("https://a.b"), Some("https://a.b"));
        assert_eq!(origin("https://a b/"), None);
        assert_eq!(origin("ftp://x/"), None);
    }

    #[test]
    fn render_fills_and_escapes() {
        assert_eq!(
            render("<html lang=\"{{lang}}\">", "fr"),
            "<html lang=\"fr\">"
        );
        assert_eq!(render("{{t:no.such}} {{x}}", "en"), "no.such {{x}}");
        // A part is included and rendered in the page's language; an
        // unknown part stays as written.
        let fr = render("{{part:account}}", "fr");
        assert!(fr.contains("<nav class=\"account\""), "{fr}");
        assert!(!fr.contains("{{"), "{fr}");
        assert_eq!(render("{{part:nope}}", "en"), "{{part:nope}}");
        let pay = render("{{part:pay}}", "fr");
        assert!(
            pay.contains("id=\"pay-go\"") && pay.contains(">Payer<"),
            "{pay}"
        );
        assert_eq!(
            escape_html("<img src=x onerror='a'>&\""),
            "&lt;img src=x onerror=&#39;a&#39;&gt;&amp;&quot;"
        );
    }
}
