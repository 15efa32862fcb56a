//! Rebuild when a migration is added or changed: `sqlx::migrate!` embeds
//! the `migrations/` folders at compile time, and cargo does not otherwise
//! know that they are inputs.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
