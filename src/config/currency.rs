//! The currencies money moves in: `stripe.currencies`, the default
//! `stripe.currency`, the packages' currencies and the cash-out rates of
//! each (`payouts.rates`).
//!
//! Owns: their validation and [`Config::cashout_rate`] (one answer for the
//! rate of any currency, whichever key holds it).
//! Must not: convert between currencies (each currency's money stays
//! apart; there is no exchange rate anywhere).

use super::{Config, ConfigError, PayoutRate};
use crate::model::Fiat;

impl Config {
    /// The cash-out rate and daily cap of `currency` (lower case): its
    /// `payouts.rates` entry, else (the default currency's)
    /// `stripe.cashout_cents_per_100_diamonds` and
    /// `payouts.cashout_cents_per_day_max`; None for a currency not in
    /// `stripe.currencies`.
    pub fn cashout_rate(&self, currency: &str) -> Option<PayoutRate> {
        if !self.stripe.currencies.iter().any(|c| c == currency) {
            return None;
        }
        if let Some(r) = self.payouts.rates.get(currency) {
            return Some(*r);
        }
        if currency == self.stripe.currency {
            return Some(PayoutRate {
                cents_per_100_diamonds: self.stripe.cashout_cents_per_100_diamonds,
                cents_per_day_max: self.payouts.cashout_cents_per_day_max,
            });
        }
        None
    }

    /// `stripe.currencies`, `stripe.currency`, the packages' currencies and
    /// `payouts.rates`.
    pub(super) fn validate_currencies(&self) -> Result<(), ConfigError> {
        fn bad(key: &str, message: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError {
                key: key.into(),
                message: message.into(),
            })
        }
        let st = &self.stripe;
        let known: Vec<&str> = Fiat::ALL.iter().map(|f| f.lower()).collect();
        if st.currencies.is_empty() {
            return bad("stripe.currencies", "needs at least one currency");
        }
        for (i, c) in st.currencies.iter().enumerate() {
            if !known.contains(&c.as_str()) {
                return bad(
                    &format!("stripe.currencies[{i}]"),
                    format!("`{c}`: must be one of {known:?} (lower case)"),
                );
            }
            if st.currencies[..i].contains(c) {
                return bad(
                    &format!("stripe.currencies[{i}]"),
                    format!("`{c}` is listed twice"),
                );
            }
        }
        if !st.currencies.contains(&st.currency) {
            return bad("stripe.currency", "must be in stripe.currencies");
        }
        for (i, p) in st.packages.iter().enumerate() {
            if !st.currencies.contains(&p.currency) {
                return bad(
                    &format!("stripe.packages[{i}].currency"),
                    format!("`{}`: must be in stripe.currencies", p.currency),
                );
            }
            if st.packages[..i].iter().any(|q| q.id == p.id) {
                return bad(
                    &format!("stripe.packages[{i}].id"),
                    format!("`{}` is used twice", p.id),
                );
            }
        }
        for (c, r) in &self.payouts.rates {
            // An entry for a currency not offered is unused (the built-in
            // defaults hold one for `eur`, which a file cannot remove).
            let key = format!("payouts.rates.{c}");
            if r.cents_per_100_diamonds <= 0 || r.cents_per_day_max <= 0 {
                return bad(
                    &key,
                    "needs cents_per_100_diamonds > 0 and cents_per_day_max > 0",
                );
            }
        }
        for c in &st.currencies {
            if *c != st.currency && !self.payouts.rates.contains_key(c) {
                return bad(
                    &format!("payouts.rates.{c}"),
                    "missing: cash-outs in this currency need their rate",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_checked_with_their_key() {
        type Breaks = fn(&mut Config);
        let cases: [(&str, Breaks); 7] = [
            ("stripe.currencies", |c| c.stripe.currencies.clear()),
            ("stripe.currencies[1]", |c| {
                c.stripe.currencies[1] = "gbp".into()
            }),
            ("stripe.currency", |c| c.stripe.currency = "gbp".into()),
            ("stripe.packages[3].currency", |c| {
                c.stripe.packages[3].currency = "gbp".into()
            }),
            ("stripe.packages[3].currency", |c| {
                c.stripe.currencies = vec!["usd".into()];
                c.payouts.rates.clear();
            }),
            ("payouts.rates.eur", |c| c.payouts.rates.clear()),
            ("payouts.rates.eur", |c| {
                c.payouts.rates.get_mut("eur").unwrap().cents_per_day_max = 0
            }),
        ];
        for (key, breaks) in cases {
            let mut c = Config::default();
            breaks(&mut c);
            assert_eq!(c.validate().unwrap_err().key, key);
        }
    }

    #[test]
    fn each_currency_has_its_rate() {
        let c = Config::default();
        let usd = c.cashout_rate("usd").unwrap();
        assert_eq!(
            (usd.cents_per_100_diamonds, usd.cents_per_day_max),
            (50, 1_000_000)
        );
        let eur = c.cashout_rate("eur").unwrap();
        assert_eq!(
            (eur.cents_per_100_diamonds, eur.cents_per_day_max),
            (46, 920_000)
        );
        assert_eq!(c.cashout_rate("gbp"), None);
        // The default currency moved to EUR: USD needs a rate of its own.
        let mut c = Config::default();
        c.stripe.currency = "eur".into();
        assert_eq!(c.validate().unwrap_err().key, "payouts.rates.usd");
        let limits = c.payouts.limits();
        assert_eq!(limits.cents_per_day_max(Fiat::Usd), 1_000_000);
        assert_eq!(limits.cents_per_day_max(Fiat::Eur), 920_000);
    }
}
