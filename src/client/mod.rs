//! A minimal protocol-v1 client: watch a room, send gifts.
//!
//! Owns: what `giftstream watch` and `giftstream send` do — connect with a
//! token, speak JSON frames, print what arrives.
//! Must not: be used by the server; it is a tool for people and scripts.

use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

async fn connect(
    url: &str,
    token: &str,
) -> anyhow::Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}token={token}");
    let (ws, _) = tokio_tungstenite::connect_async(full.as_str())
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(ws)
}

/// Join `room` and print every frame as a JSON line until the room ends
/// or the connection closes. With `since`, resume from that seq first.
pub async fn watch(url: &str, token: &str, room: &str, since: Option<u64>) -> anyhow::Result<()> {
    let mut ws = connect(url, token).await?;
    let hello = match since {
        Some(s) => json!({ "type": "resume", "room": room, "since": s }),
        None => json!({ "type": "join", "room": room }),
    };
    ws.send(Message::text(hello.to_string())).await?;
    while let Some(msg) = ws.next().await {
        match msg? {
            Message::Text(t) => {
                println!("{t}");
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                if v["type"] == "room_ended" {
                    break;
                }
            }
            Message::Close(frame) => {
                if let Some(f) = frame {
                    eprintln!("closed: {} {}", f.code, f.reason);
                }
                break;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Send `times` gifts (ids `prefix-1..`) and print each answer.
/// Returns how many were acknowledged.
pub async fn send(
    url: &str,
    token: &str,
    room: &str,
    gift: &str,
    count: u32,
    times: u32,
    prefix: &str,
) -> anyhow::Result<u32> {
    let mut ws = connect(url, token).await?;
    let mut acked = 0;
    for i in 1..=times {
        let id = format!("{prefix}-{i}");
        let msg = json!({ "type": "gift", "room": room, "gift": gift, "count": count, "id": id });
        ws.send(Message::text(msg.to_string())).await?;
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(15), ws.next())
                .await
                .context("no answer within 15 s")?;
            let Some(frame) = frame else {
                anyhow::bail!("connection closed")
            };
            if let Message::Text(t) = frame? {
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                if v["id"] == id.as_str() {
                    println!("{t}");
                    if v["type"] == "gift_ack" {
                        acked += 1;
                    }
                    break;
                }
            }
        }
    }
    let _ = ws.close(None).await;
    Ok(acked)
}
