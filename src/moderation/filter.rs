//! Word filters: a creator's muted words and the built-in lists, matched
//! on the normalised key of a message (see `super::normalise`).
//!
//! Owns: [`Mode`], [`Pattern`], [`WordFilter`] and the built-in lists
//! (`lists/en.txt`, `lists/fr.txt`, compiled in). Matching:
//!
//! - **substring**: the pattern's letters appear anywhere in the message's
//!   letters (separators ignored on both sides): `ass` catches `bypass`.
//! - **word**: the pattern's letters appear where a word of the message
//!   starts and end where a word ends. Separators between letters only
//!   add word boundaries, so a spaced-out spelling (`b a d`, `b.a.d`)
//!   still starts and ends on boundaries and matches, while `bad` inside
//!   `badge` or `abad` does not (its end or its start is inside a word).
//!   A phrase (`bad word`) is matched on its letters the same way.
//!
//! Must not: read the ledger or know about creators (the rules cache
//! does).

use super::normalise::{key, Key};

/// How a muted word matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Whole words only (see the module doc).
    Word,
    /// Anywhere, even inside a longer word.
    Substring,
}

impl Mode {
    /// `word` or `substring` (the wire and the ledger's spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Word => "word",
            Mode::Substring => "substring",
        }
    }

    /// The mode spelled `s`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "word" => Some(Mode::Word),
            "substring" => Some(Mode::Substring),
            _ => None,
        }
    }
}

/// One muted word or phrase, ready to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// Its letters (the normalised key, separators removed).
    pub letters: Vec<char>,
    /// How it matches.
    pub mode: Mode,
    /// What to name it in a review reason (the creator's spelling, or
    /// `builtin:LANG`).
    pub label: String,
}

impl Pattern {
    /// The pattern of `text`; None when it has no letters at all.
    pub fn new(text: &str, mode: Mode, label: impl Into<String>) -> Option<Pattern> {
        let k = key(text);
        (!k.is_empty()).then(|| Pattern {
            letters: k.letters,
            mode,
            label: label.into(),
        })
    }

    /// Whether the pattern matches the message key `k`.
    pub fn matches(&self, k: &Key) -> bool {
        let n = self.letters.len();
        if n == 0 || n > k.letters.len() {
            return false;
        }
        (0..=k.letters.len() - n).any(|i| {
            k.letters[i..i + n] == self.letters[..]
                && (self.mode == Mode::Substring || (k.starts[i] && k.ends_word(i + n - 1)))
        })
    }
}

/// The built-in list of `lang` (`en` or `fr`), None for another language.
pub fn builtin(lang: &str) -> Option<&'static str> {
    match lang {
        "en" => Some(include_str!("lists/en.txt")),
        "fr" => Some(include_str!("lists/fr.txt")),
        _ => None,
    }
}

/// The languages with a built-in list.
pub const BUILTIN_LANGS: [&str; 2] = ["en", "fr"];

/// The patterns of a built-in list's text: one per line, `#` starts a
/// comment line, a line starting with `~` matches as a substring, any
/// other as whole words.
pub fn parse_list(lang: &str, text: &str) -> Vec<Pattern> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| match l.strip_prefix('~') {
            Some(s) => Pattern::new(s, Mode::Substring, format!("builtin:{lang}")),
            None => Pattern::new(l, Mode::Word, format!("builtin:{lang}")),
        })
        .collect()
}

/// A set of patterns: a creator's words plus the built-in lists they
/// switched on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordFilter {
    patterns: Vec<Pattern>,
}

impl WordFilter {
    /// A filter of `patterns`.
    pub fn new(patterns: Vec<Pattern>) -> WordFilter {
        WordFilter { patterns }
    }

    /// Patterns held.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// No patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The first pattern `text` matches, if any.
    pub fn first_match(&self, text: &str) -> Option<&Pattern> {
        if self.patterns.is_empty() {
            return None;
        }
        let k = key(text);
        self.patterns.iter().find(|p| p.matches(&k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(s: &str) -> WordFilter {
        WordFilter::new(vec![Pattern::new(s, Mode::Word, s).unwrap()])
    }

    fn sub(s: &str) -> WordFilter {
        WordFilter::new(vec![Pattern::new(s, Mode::Substring, s).unwrap()])
    }

    #[test]
    fn whole_word_catches_every_spelling_of_the_word() {
        let f = word("bad");
        for m in [
            "bad",
            "so BAD!",
            "BÀD",
            "b a d",
            "b.a.d",
            "b\u{0430}d",
            "b4d day",
            "this is b\u{200B}a\u{200B}d",
        ] {
            assert!(f.first_match(m).is_some(), "{m:?}");
        }
    }

    #[test]
    fn whole_word_never_matches_inside_a_longer_word() {
        let f = word("bad");
        for m in ["badge", "abad", "a badminton game", "", "b"] {
            assert!(f.first_match(m).is_none(), "{m:?}");
        }
    }

    #[test]
    fn substring_matches_inside_words() {
        let f = sub("bad");
        assert!(f.first_match("badge").is_some());
        assert!(f.first_match("a-b-a-dminton").is_some());
        assert!(f.first_match("good").is_none());
    }

    #[test]
    fn a_phrase_matches_its_words_with_any_separators() {
        let f = word("bad word");
        assert!(f.first_match("what a BAD   WORD").is_some());
        assert!(f.first_match("bad-word").is_some());
        assert!(f.first_match("badwords").is_none());
    }

    #[test]
    fn a_pattern_without_letters_is_refused() {
        assert!(Pattern::new(" .! ", Mode::Word, "x").is_none());
    }

    #[test]
    fn builtin_lists_parse_and_catch_their_words() {
        for lang in BUILTIN_LANGS {
            let list = parse_list(lang, builtin(lang).unwrap());
            assert!(list.len() >= 5, "{lang}");
            assert!(list.iter().all(|p| p.label == format!("builtin:{lang}")));
        }
        let en = WordFilter::new(parse_list("en", builtin("en").unwrap()));
        assert!(en.first_match("you are a SH1T").is_some());
        assert!(en.first_match("Scunthorpe is a town").is_none());
        let fr = WordFilter::new(parse_list("fr", builtin("fr").unwrap()));
        assert!(fr.first_match("quel connard").is_some());
        assert!(fr.first_match("espèce d'ENCULÉ").is_some());
        assert!(fr.first_match("bonjour à tous").is_none());
        assert!(builtin("de").is_none());
    }
}
