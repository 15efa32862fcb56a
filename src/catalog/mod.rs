//! The gift catalog: what each gift costs in coins and earns in diamonds.
//!
//! Owns: [`Catalog`] (loaded from `config/catalog.toml` or the copy built
//! into the binary) and its validation.
//! Must not: price anything at request time from client input; the client
//! names a gift id, the catalog says what it is worth.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::protocol::valid_name;

/// The catalog that ships with the binary (a copy of `config/catalog.toml`).
pub const BUILT_IN: &str = include_str!("../../config/catalog.toml");

/// One gift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gift {
    /// Stable id clients send.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Price in coins, per unit.
    pub coins: i64,
    /// Creator's share in diamonds, per unit.
    pub diamonds: i64,
    /// Animation asset name.
    pub animation: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    gift: Vec<Gift>,
}

/// The gifts by id, in file order for listing.
#[derive(Debug, Clone)]
pub struct Catalog {
    list: Arc<Vec<Gift>>,
    by_id: Arc<HashMap<String, usize>>,
}

impl Catalog {
    /// Parse and validate catalog TOML.
    pub fn parse(text: &str) -> anyhow::Result<Catalog> {
        let file: CatalogFile = toml::from_str(text)?;
        let mut by_id = HashMap::new();
        for (i, g) in file.gift.iter().enumerate() {
            anyhow::ensure!(
                valid_name(&g.id),
                "gift[{i}].id `{}` must be 1..=64 of [A-Za-z0-9_.-]",
                g.id
            );
            anyhow::ensure!(g.coins > 0, "gift `{}`: coins must be > 0", g.id);
            anyhow::ensure!(
                g.diamonds >= 0 && g.diamonds <= g.coins,
                "gift `{}`: diamonds must be 0..=coins",
                g.id
            );
            anyhow::ensure!(
                by_id.insert(g.id.clone(), i).is_none(),
                "gift `{}` listed twice",
                g.id
            );
        }
        anyhow::ensure!(!file.gift.is_empty(), "the catalog has no gifts");
        Ok(Catalog {
            list: Arc::new(file.gift),
            by_id: Arc::new(by_id),
        })
    }

    /// The built-in catalog, or the file at `path` when not empty.
    pub fn load(path: &str) -> anyhow::Result<Catalog> {
        if path.is_empty() {
            return Catalog::parse(BUILT_IN);
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("catalog.path {path}: {e}"))?;
        Catalog::parse(&text).map_err(|e| anyhow::anyhow!("catalog.path {path}: {e}"))
    }

    /// The gift with `id`.
    pub fn get(&self, id: &str) -> Option<&Gift> {
        self.by_id.get(id).map(|&i| &self.list[i])
    }

    /// All gifts in catalog order.
    pub fn gifts(&self) -> &[Gift] {
        &self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_catalog_is_tiktok_shaped() {
        let c = Catalog::load("").unwrap();
        assert!(c.gifts().len() >= 10);
        assert_eq!(c.get("rose").unwrap().coins, 1);
        assert!(c.gifts().iter().any(|g| g.coins >= 10_000));
        assert!(c.get("nope").is_none());
    }

    #[test]
    fn refuses_bad_catalogs() {
        let dup = "[[gift]]\nid='a'\nname='A'\ncoins=1\ndiamonds=1\nanimation='a'\n".repeat(2);
        assert!(Catalog::parse(&dup)
            .unwrap_err()
            .to_string()
            .contains("twice"));
        let greedy = "[[gift]]\nid='a'\nname='A'\ncoins=1\ndiamonds=2\nanimation='a'\n";
        assert!(Catalog::parse(greedy).is_err());
    }
}
