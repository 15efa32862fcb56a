//! Placeholder until the services helper lands (see branch `pg`).
pub fn require_services() -> bool {
    std::env::var("GIFTSTREAM_TEST_REQUIRE_SERVICES").as_deref() == Ok("1")
}
pub async fn fresh_postgres_url() -> Option<String> {
    None
}
pub async fn fresh_redis_url() -> Option<String> {
    None
}
