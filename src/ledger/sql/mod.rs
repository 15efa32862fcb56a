//! The SQL ledger, written once for SQLite and PostgreSQL.

/// Whether a database error is a CHECK violation (a balance that would go
/// below zero).
pub(crate) fn is_check_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.code().as_deref() == Some("23514")
                || d.code().as_deref() == Some("275")
                || d.message().contains("CHECK constraint failed")
        }
        _ => false,
    }
}
