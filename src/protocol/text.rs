//! Free text a client may attach: a gift's `message` and a video's
//! `title`.
//!
//! Owns: their length bounds (contract constants, like `count`'s) and the
//! character rule: no control character (Unicode general category Cc,
//! `\n` and `\t` included) and no bidirectional control (U+061C, U+200E,
//! U+200F, U+202A..U+202E, U+2066..U+2069), which could reorder what
//! viewers see around it.
//! Must not: trim, normalize or rewrite text: it is refused or kept as is.

use crate::error::{Error, Result};

/// Longest gift message, in Unicode scalar values.
pub const MESSAGE_LEN_MAX: usize = 150;
/// Longest video title, in Unicode scalar values.
pub const TITLE_LEN_MAX: usize = 100;

/// True for the bidirectional controls the rule refuses.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `bad_request` naming `what` unless `text` is at most `len_max` scalar
/// values with no control or bidirectional control character.
pub fn check_text(what: &str, text: &str, len_max: usize) -> Result<()> {
    let n = text.chars().count();
    if n > len_max {
        return Err(Error::bad_request(format!(
            "{what} must be at most {len_max} characters, got {n}"
        )));
    }
    if let Some(c) = text.chars().find(|c| c.is_control() || is_bidi_control(*c)) {
        return Err(Error::bad_request(format!(
            "{what} must not contain control or bidirectional characters (found U+{:04X})",
            c as u32
        )));
    }
    Ok(())
}

/// A gift's optional message (None and "" are no message).
pub fn check_message(message: Option<&str>) -> Result<()> {
    match message {
        Some(m) => check_text("message", m, MESSAGE_LEN_MAX),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn messages_follow_the_length_and_character_rules() {
        let ok = ["", "thanks!", "merci beaucoup 🌹", "日本語のメッセージ"];
        for m in ok {
            assert!(check_message(Some(m)).is_ok(), "{m:?}");
        }
        assert!(
            check_message(Some(&"é".repeat(150))).is_ok(),
            "150 scalar values"
        );
        let bad = [
            "é".repeat(151),
            "line\nbreak".into(),
            "tab\there".into(),
            "nul\0".into(),
            "del\u{7f}".into(),
            "c1\u{85}".into(),
            "abc\u{202E}cba".into(),
            "\u{200E}".into(),
            "\u{200F}".into(),
            "\u{061C}".into(),
            "\u{202A}".into(),
            "\u{2066}".into(),
            "\u{2069}".into(),
        ];
        for m in &bad {
            let e = check_message(Some(m)).expect_err(m);
            assert_eq!(e.code, ErrorCode::BadRequest, "{m:?}");
        }
        assert!(check_text("title", &"t".repeat(100), TITLE_LEN_MAX).is_ok());
        assert!(check_text("title", &"t".repeat(101), TITLE_LEN_MAX).is_err());
    }
}
