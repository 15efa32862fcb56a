//! The auth matrix: every HTTP route (`giftstream::http::ROUTES`) and every
//! WebSocket client message, called over real sockets with every kind of
//! credential, and the status or error code each cell must get.
//!
//! Columns (credentials): no token, a bad signature, an expired token, a
//! token not yet valid (`nbf` in the future), an overlay-scoped token
//! (`scope: "overlay:ROOM"`), the owner's token in `?token=` instead of the
//! header, a viewer, a creator who does not own the target, the owner, the
//! owner's user with a viewer token, and an admin. The bad-signature,
//! expired, not-yet-valid, overlay and query columns all carry the owner's
//! user and the creator role: a server that ignores what makes them
//! special lets them do what the owner may, and the cell shows it.
//!
//! A cell that passes authentication and authorization but is refused by
//! the route's own rule (no such coin package, payouts not enabled, a
//! creator tipping themself) names that refusal, so "passed the gate" is
//! asserted as precisely as "stopped at the gate".
//!
//! Adding a route to `http::ROUTES`, or a variant to `ClientMsg`, without
//! its row here fails `matrix_rows_are_every_route_and_message`.
//!
//! Cells marked `needs h-auth` depend on work done on another branch (nbf,
//! scoped tokens, `?token=` only on `/v1/ws` and `/overlay/...`, `refresh`):
//! while [`PENDING_AUTH`] is true they are run and printed, not asserted.

mod common;

use common::server::{embedded, TestServer};
use giftstream::auth::Role;

const OWNER: &str = "creator-1";
const VIEWER: &str = "viewer-1";
/// The target of every cell: owned by OWNER, live.
const ROOM: &str = "matrix-room";

/// Regression: `DELETE /v1/rooms/{room}` took any token of the room's
/// creator's user, whatever its role: a viewer token (the one a host
/// platform gives a creator to watch others) could end their live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_token_of_the_rooms_creator_cannot_end_it() {
    let s = TestServer::start(&embedded(), |_| {}).await;
    s.open_room(OWNER, ROOM).await;
    let (st, v) = s
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/rooms/{ROOM}"),
            Some(&s.token(OWNER, Role::Viewer)),
            None,
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (403, Some("forbidden")), "{v}");
    let (st, v) = s
        .get(&format!("/v1/rooms/{ROOM}"), &s.token(VIEWER, Role::Viewer))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["live"], true, "the room is still live: {v}");
    let (st, v) = s
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/rooms/{ROOM}"),
            Some(&s.token(OWNER, Role::Creator)),
            None,
        )
        .await;
    assert_eq!(st, 200, "the creator token ends it: {v}");
    assert_eq!(v["live"], false, "{v}");
    s.stop().await;
}
