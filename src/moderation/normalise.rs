//! The match key of a text: what the word filter compares, so that case,
//! accents, look-alike letters and inserted separators do not slip past.
//!
//! Owns: [`Key`] and [`key`], the normalisation rules (documented in
//! `docs/MODERATION.md`, "Word filters and normalisation"). In order:
//!
//! 1. Unicode NFKC (full-width and styled letters, ligatures, superscripts
//!    become their plain letters: `ｂ` → `b`, `ﬁ` → `fi`, `𝐛` → `b`).
//! 2. Invisible characters are dropped outright (zero-width space and
//!    joiners U+200B..U+200F, U+2060..U+2064, U+FEFF, U+180E, U+034F, the
//!    soft hyphen U+00AD): they separate nothing.
//! 3. Lower case (Unicode `to_lowercase`; `ß` → `ss` as the case fold
//!    does).
//! 4. Accents removed: canonical decomposition (NFD), combining marks
//!    dropped (`à` → `a`, `ç` → `c`, `й` → `и`).
//! 5. Look-alikes mapped to Latin letters: Cyrillic and Greek homoglyphs
//!    ([`homoglyph`]: `а` → `a`, `е` → `e`, `о` → `o`, `р` → `p`, `с` → `c`,
//!    `ο` → `o`, `ρ` → `p`, ...) and the common leetspeak digits and
//!    symbols `0`→o `1`→i `3`→e `4`→a `5`→s `7`→t `@`→a `$`→s.
//! 6. What is left is split into letters (alphanumeric characters) and
//!    separators (everything else: spaces, punctuation, symbols). The key
//!    is the letters alone, each marked with whether a separator came
//!    before it (a word start); separators themselves are not kept, so
//!    `b a d`, `b.a.d` and `bad` share the letters `bad`.
//!
//! Must not: decide what matches (see `super::filter`) or allocate per
//! character beyond the key itself.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// The match key of a text: its letters after normalisation, and where
/// its words start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Key {
    /// The letters, separators removed.
    pub letters: Vec<char>,
    /// `starts[i]`: letter `i` starts a word (it is the first letter, or a
    /// separator came before it).
    pub starts: Vec<bool>,
}

impl Key {
    /// The letters as a string (the stored `normalised` form of a muted
    /// word).
    pub fn text(&self) -> String {
        self.letters.iter().collect()
    }

    /// Whether letter `i` ends a word (the last letter, or the next one
    /// starts a word).
    pub fn ends_word(&self, i: usize) -> bool {
        i + 1 >= self.letters.len() || self.starts[i + 1]
    }

    /// No letters at all.
    pub fn is_empty(&self) -> bool {
        self.letters.is_empty()
    }
}

/// Characters that show nothing: dropped before anything else.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
    )
}

/// The Latin letter a lower-case look-alike stands for (Cyrillic, Greek,
/// leetspeak digits and symbols), or the character itself.
pub fn homoglyph(c: char) -> char {
    match c {
        // Cyrillic.
        'а' => 'a',
        'в' => 'b',
        'е' | 'ё' | 'є' => 'e',
        'һ' => 'h',
        'н' => 'h',
        'і' | 'ї' => 'i',
        'ј' => 'j',
        'к' => 'k',
        'м' => 'm',
        'о' => 'o',
        'р' => 'p',
        'ԛ' => 'q',
        'г' => 'r',
        'ѕ' => 's',
        'с' => 'c',
        'т' => 't',
        'у' => 'y',
        'ѵ' => 'v',
        'ԝ' => 'w',
        'х' => 'x',
        'ԁ' => 'd',
        'ɡ' => 'g',
        // Greek.
        'α' => 'a',
        'β' => 'b',
        'ε' => 'e',
        'η' => 'n',
        'ι' => 'i',
        'κ' => 'k',
        'μ' => 'u',
        'ν' => 'v',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        'ω' => 'w',
        // Leetspeak.
        '0' => 'o',
        '1' => 'i',
        '3' => 'e',
        '4' => 'a',
        '5' => 's',
        '7' => 't',
        '@' => 'a',
        '$' => 's',
        c => c,
    }
}

/// The match key of `text` (see the module doc for the rules).
pub fn key(text: &str) -> Key {
    let mut out = Key::default();
    let mut sep = true;
    let lowered: String = text
        .nfkc()
        .filter(|c| !invisible(*c))
        .flat_map(char::to_lowercase)
        .collect();
    let lowered = lowered.replace('ß', "ss");
    for c in lowered.nfd().filter(|c| !is_combining_mark(*c)) {
        let c = homoglyph(c);
        if c.is_alphanumeric() {
            out.letters.push(c);
            out.starts.push(sep);
            sep = false;
        } else {
            sep = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letters(s: &str) -> String {
        key(s).text()
    }

    #[test]
    fn nfkc_folds_styled_and_full_width_letters() {
        assert_eq!(letters("ｂａｄ"), "bad");
        assert_eq!(letters("𝐛𝐚𝐝"), "bad");
        assert_eq!(letters("ﬁne"), "fine");
    }

    #[test]
    fn case_is_folded() {
        assert_eq!(letters("BaD"), "bad");
        assert_eq!(letters("STRASSE"), letters("straße"));
    }

    #[test]
    fn accents_are_removed() {
        assert_eq!(letters("BÀD"), "bad");
        assert_eq!(letters("enculé"), "encule");
        assert_eq!(letters("garçon"), "garcon");
        // Combining marks typed on their own go too.
        assert_eq!(letters("ba\u{0301}d"), "bad");
    }

    #[test]
    fn look_alikes_become_latin() {
        // Cyrillic а, Greek ο, Cyrillic р and с.
        assert_eq!(letters("b\u{0430}d"), "bad");
        assert_eq!(letters("g\u{03BF}\u{03BF}d"), "good");
        assert_eq!(letters("\u{0440}\u{0441}"), "pc");
        // Upper-case Cyrillic is lowered first, then mapped.
        assert_eq!(letters("B\u{0410}D"), "bad");
    }

    #[test]
    fn leetspeak_digits_and_symbols_become_letters() {
        assert_eq!(letters("b4d"), "bad");
        assert_eq!(letters("h3ll0"), "hello");
        assert_eq!(letters("@$5"), "ass");
        assert_eq!(letters("1t7"), "itt");
        // Digits without a letter meaning stay digits.
        assert_eq!(letters("2869"), "2869");
    }

    #[test]
    fn separators_are_dropped_and_mark_word_starts() {
        assert_eq!(letters("b a d"), "bad");
        assert_eq!(letters("b.a.d"), "bad");
        assert_eq!(letters("b-a_d!"), "bad");
        let k = key("a bad, day");
        assert_eq!(k.text(), "abadday");
        assert_eq!(k.starts, [true, true, false, false, true, false, false]);
        assert!(k.ends_word(3) && !k.ends_word(2) && k.ends_word(6));
    }

    #[test]
    fn invisible_characters_separate_nothing() {
        let k = key("b\u{200B}a\u{00AD}d");
        assert_eq!(k.text(), "bad");
        assert_eq!(k.starts, [true, false, false]);
    }

    #[test]
    fn empty_and_separator_only_texts_have_no_letters() {
        assert!(key("").is_empty());
        assert!(key(" .,!? ").is_empty());
    }
}
