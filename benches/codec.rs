//! JSON vs MessagePack: encode and decode of one `gift_event`.
//!
//! Encode is `ServerMsg::encode` (what the room task calls once per event
//! per wire format); decode is what a client does with the frame.

mod common;

use std::time::Duration;

use axum::extract::ws::Message;
use criterion::{criterion_group, criterion_main, Criterion};
use giftstream::protocol::{Encoding, ServerMsg};

fn bench(c: &mut Criterion) {
    let msg = common::gift_msg(123_456);
    let mut g = c.benchmark_group("codec_gift_event");
    g.bench_function("json_encode", |b| b.iter(|| msg.encode(Encoding::Json)));
    g.bench_function("msgpack_encode", |b| {
        b.iter(|| msg.encode(Encoding::MsgPack))
    });
    let Message::Text(json) = msg.encode(Encoding::Json) else {
        panic!("JSON is a text frame")
    };
    let Message::Binary(bin) = msg.encode(Encoding::MsgPack) else {
        panic!("MessagePack is a binary frame")
    };
    println!(
        "gift_event size: JSON {} bytes, MessagePack {} bytes",
        json.len(),
        bin.len()
    );
    g.bench_function("json_decode", |b| {
        b.iter(|| serde_json::from_str::<ServerMsg>(json.as_str()).expect("decodes"))
    });
    g.bench_function("msgpack_decode", |b| {
        b.iter(|| rmp_serde::from_slice::<ServerMsg>(&bin).expect("decodes"))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
