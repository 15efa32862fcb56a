//! The kernel's floor under fan-out: what one `send(2)` of a `gift_event`
//! sized frame to a loopback TCP socket costs the sending thread, with a
//! tokio reader on another thread draining every socket (as the load
//! generator's viewers do).
//!
//! giftstream sends each delivery with one `send(2)` when events do not
//! cluster (10 gifts/s per room leaves nothing to batch per socket), so no
//! fan-out on this machine can cost less server CPU per delivery than this.
//! On loopback the receiver's TCP input (`tcp_v4_rcv`, the reader's
//! wake-up) runs in the sender's softirq and is charged to the sender; on a
//! real NIC it is not.
//!
//! The time reported is the sending thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), not wall time, so a busy machine disturbs
//! it less.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::io::AsyncReadExt;

/// Sockets written per iteration (one frame each).
const SOCKETS: usize = 1_000;
/// A `gift_event` in JSON is 248 bytes; with the WebSocket header, 250.
const FRAME_LEN: usize = 250;

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a
    // constant the kernel always supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `SOCKETS` connected pairs: the sending ends (nonblocking, Nagle off,
/// as the server's are), and a thread whose tokio runtime reads the other
/// ends until they close.
fn pairs() -> (Vec<TcpStream>, std::thread::JoinHandle<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut senders = Vec::with_capacity(SOCKETS);
    let mut readers = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        let s = TcpStream::connect(addr).expect("connect");
        let (r, _) = listener.accept().expect("accept");
        s.set_nodelay(true).expect("nodelay");
        senders.push(s);
        readers.push(r);
    }
    let drain = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let tasks: Vec<_> = readers
                .into_iter()
                .map(|r| {
                    r.set_nonblocking(true).expect("nonblocking");
                    let mut r = tokio::net::TcpStream::from_std(r).expect("tokio stream");
                    tokio::spawn(async move {
                        let mut buf = [0u8; 4096];
                        let mut n = 0u64;
                        while let Ok(k) = r.read(&mut buf).await {
                            if k == 0 {
                                break;
                            }
                            n += k as u64;
                        }
                        n
                    })
                })
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await.expect("reader task");
            }
            total
        })
    });
    (senders, drain)
}

fn bench(c: &mut Criterion) {
    let (mut senders, drain) = pairs();
    let frame = [b'x'; FRAME_LEN];
    let mut sent = 0u64;
    let mut g = c.benchmark_group("socket_floor");
    g.throughput(Throughput::Elements(SOCKETS as u64));
    g.bench_function("send_250b_to_1000_loopback_sockets", |b| {
        b.iter_custom(|iters| {
            let t0 = thread_cpu();
            for _ in 0..iters {
                for s in senders.iter_mut() {
                    s.write_all(&frame).expect("send");
                    sent += FRAME_LEN as u64;
                }
            }
            thread_cpu() - t0
        })
    });
    g.finish();
    drop(senders);
    let read = drain.join().expect("drain thread");
    assert_eq!(read, sent, "every byte sent was read");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
