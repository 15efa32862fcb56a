//! Static assets built into the binary: the gift art (`assets/gifts/*.svg`)
//! and the JavaScript SDK (`sdk/giftstream.js`).
//!
//! Owns: the table of embedded files, their routes' responses and headers
//! (`Content-Type`, `Cache-Control`, `X-Content-Type-Options: nosniff`, and a
//! `Content-Security-Policy` that forbids scripts in an SVG opened directly),
//! and the art URL of a catalog gift ([`art_path`]).
//! Must not: read files at request time, or serve anything not listed here
//! (a path never reaches the file system).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::Error;

/// `(gift id, SVG)` for every gift of the built-in catalog.
const GIFT_ART: &[(&str, &str)] = &[
    ("rose", include_str!("../../assets/gifts/rose.svg")),
    (
        "finger_heart",
        include_str!("../../assets/gifts/finger_heart.svg"),
    ),
    ("perfume", include_str!("../../assets/gifts/perfume.svg")),
    ("doughnut", include_str!("../../assets/gifts/doughnut.svg")),
    (
        "hand_hearts",
        include_str!("../../assets/gifts/hand_hearts.svg"),
    ),
    ("corgi", include_str!("../../assets/gifts/corgi.svg")),
    (
        "money_gun",
        include_str!("../../assets/gifts/money_gun.svg"),
    ),
    ("galaxy", include_str!("../../assets/gifts/galaxy.svg")),
    (
        "whale_diving",
        include_str!("../../assets/gifts/whale_diving.svg"),
    ),
    ("lion", include_str!("../../assets/gifts/lion.svg")),
    ("universe", include_str!("../../assets/gifts/universe.svg")),
];

/// The JavaScript SDK, an ES module.
const SDK_JS: &str = include_str!("../../sdk/giftstream.js");

/// Art may be redrawn in a release under the same URL: cached for a day,
/// not `immutable`.
const ART_CACHE: &str = "public, max-age=86400";
/// The SDK changes with releases; an hour keeps pages fresh after an upgrade.
const SDK_CACHE: &str = "public, max-age=3600";
/// An SVG opened on its own is a document: no scripts, nothing loaded from
/// elsewhere, only its own inline styles (its CSS animations).
const SVG_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";

/// The SVG of gift `id`, if the binary has art for it.
pub fn gift_svg(id: &str) -> Option<&'static str> {
    GIFT_ART.iter().find(|(g, _)| *g == id).map(|(_, s)| *s)
}

/// The URL path of gift `id`'s art (`/assets/gifts/{id}.svg`), if any.
pub fn art_path(id: &str) -> Option<String> {
    gift_svg(id).map(|_| format!("/assets/gifts/{id}.svg"))
}

/// `GET /assets/gifts/{id}.svg` (anyone). An unknown id is 404
/// `unknown_gift`.
pub async fn gift_art(Path(file): Path<String>) -> Response {
    let svg = file.strip_suffix(".svg").and_then(gift_svg);
    let Some(svg) = svg else {
        return Error::new(crate::error::ErrorCode::UnknownGift, "no art for this gift")
            .into_response();
    };
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(ART_CACHE)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(SVG_CSP),
            ),
        ],
        svg,
    )
        .into_response()
}

/// `GET /sdk/giftstream.js` (anyone): the SDK as an ES module.
pub async fn sdk_js() -> Response {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(SDK_CACHE)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        SDK_JS,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_gift_has_art() {
        let cat = crate::catalog::Catalog::parse(crate::catalog::BUILT_IN).unwrap();
        for g in cat.gifts() {
            let svg = gift_svg(&g.id).unwrap_or_else(|| panic!("no art for {}", g.id));
            assert!(svg.starts_with("<svg"), "{} is an SVG", g.id);
            assert!(!svg.contains("<script"), "{} has no script", g.id);
            for external in ["href=\"http", "url(http", "@import", "<foreignObject"] {
                assert!(!svg.contains(external), "{} refers to {external}", g.id);
            }
        }
        assert_eq!(GIFT_ART.len(), cat.gifts().len());
    }
}
