//! What a token says and who the caller is: [`Role`], [`Scope`],
//! [`Claims`], [`Token`] and [`Identity`] with its role checks.
//!
//! Owns: those types and the role helpers each endpoint states its rule
//! with.
//! Must not: verify signatures or read requests (see `verify`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::protocol::valid_name;

/// What a caller is allowed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watches rooms, holds a wallet, sends gifts.
    Viewer,
    /// Opens rooms, registers videos, earns diamonds (and may gift too).
    Creator,
    /// Operates the system: grants, anyone's earnings.
    Admin,
    /// A brand of the Creator Marketplace (protocol v1 additions): the
    /// only role of the brand routes (`/v1/brands/me/...`); elsewhere it
    /// may do what any authenticated user may.
    Brand,
}

/// What a scoped token is limited to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `overlay:ROOM`: `join`/`resume` (and `leave`) of ROOM over `/v1/ws`
    /// and loading `/overlay/ROOM`; nothing else.
    Overlay(String),
}

impl Scope {
    /// `overlay:ROOM` for a valid room name.
    pub fn overlay(room: &str) -> Scope {
        Scope::Overlay(room.to_string())
    }

    /// The scope of a claim; `None` when it is not one giftstream knows.
    pub fn parse(claim: &str) -> Option<Scope> {
        let room = claim.strip_prefix("overlay:")?;
        valid_name(room).then(|| Scope::Overlay(room.to_string()))
    }

    /// Whether this scope lets the token use `room`.
    pub fn allows_room(&self, room: &str) -> bool {
        match self {
            Scope::Overlay(r) => r == room,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Overlay(room) => write!(f, "overlay:{room}"),
        }
    }
}

/// The claims of a giftstream token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Role.
    pub role: Role,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// `overlay:ROOM`; absent: the role's full privilege.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Issuer (checked against `auth.issuer` when that is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience: a string or a list (checked against `auth.audience`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    /// When the user's account was created on the host platform, seconds
    /// since the epoch (optional; read by the creators' review rule
    /// `review_account_age_days`, see `docs/MODERATION.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acct_created: Option<u64>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id (`sub`).
    pub user: String,
    /// Role.
    pub role: Role,
    /// The token's `acct_created` claim (seconds since the epoch), if any.
    pub account_created_s: Option<u64>,
}

/// A verified token: who, what it is limited to, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The caller.
    pub identity: Identity,
    /// The token's scope; `None` is the role's full privilege.
    pub scope: Option<Scope>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

impl Identity {
    /// `forbidden` unless the caller has `role`.
    pub fn require(&self, role: Role) -> Result<()> {
        if self.role == role {
            Ok(())
        } else {
            Err(Error::forbidden(
                format!("needs role {role:?}").to_lowercase(),
            ))
        }
    }

    /// `forbidden` unless the caller is `user` or an admin.
    pub fn require_self_or_admin(&self, user: &str) -> Result<()> {
        if self.role == Role::Admin || self.user == user {
            Ok(())
        } else {
            Err(Error::forbidden("not yours"))
        }
    }
}
