//! WebSocket framing (RFC 6455) as much as the floor server needs.
//!
//! Owns: [`encode`] (an unmasked server frame: text, close, pong) and
//! [`Parser`], which takes masked client frames out of a read buffer.
//! Must not: allocate per delivery: a frame is encoded once per event and
//! the same bytes go to every viewer.

/// Text frame opcode.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame opcode.
pub const OP_BINARY: u8 = 0x2;
/// Close frame opcode.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub const OP_PING: u8 = 0x9;
/// Pong frame opcode.
pub const OP_PONG: u8 = 0xA;

/// Longest client frame accepted (larger ones close the socket).
pub const CLIENT_FRAME_LEN_MAX: usize = 64 * 1024;

/// One final, unmasked frame of `opcode` carrying `payload`.
pub fn encode(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A client frame taken out of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFrame {
    /// Its opcode (fragmented messages are refused by the caller).
    pub opcode: u8,
    /// FIN bit.
    pub fin: bool,
    /// Unmasked payload.
    pub payload: Vec<u8>,
}

/// What the buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole frame, and how many bytes it took.
    Frame(ClientFrame, usize),
    /// Not a whole frame yet.
    More,
    /// Not a valid client frame (unmasked, or too long).
    Bad,
}

/// Take the first client frame out of `buf` (which is not changed).
pub fn parse(buf: &[u8]) -> Parsed {
    if buf.len() < 2 {
        return Parsed::More;
    }
    let fin = buf[0] & 0x80 != 0;
    let opcode = buf[0] & 0x0F;
    if buf[1] & 0x80 == 0 {
        return Parsed::Bad; // clients must mask
    }
    let (len, mut at) = match buf[1] & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Parsed::More;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Parsed::More;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let n = u64::from_be_bytes(b);
            if n > CLIENT_FRAME_LEN_MAX as u64 {
                return Parsed::Bad;
            }
            (n as usize, 10)
        }
        n => (n as usize, 2),
    };
    if len > CLIENT_FRAME_LEN_MAX {
        return Parsed::Bad;
    }
    if buf.len() < at + 4 + len {
        return Parsed::More;
    }
    let mask = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
    at += 4;
    let payload = buf[at..at + len]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    Parsed::Frame(
        ClientFrame {
            opcode,
            fin,
            payload,
        },
        at + len,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = encode(opcode, payload);
        let head = f.len() - payload.len();
        f[1] |= 0x80;
        let mask = [1u8, 2, 3, 4];
        let body: Vec<u8> = payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        f.truncate(head);
        f.extend_from_slice(&mask);
        f.extend_from_slice(&body);
        f
    }

    #[test]
    fn client_frames_round_trip_at_every_length_form() {
        for len in [0usize, 5, 125, 126, 300, 70_000 / 2] {
            let p = vec![b'x'; len];
            let f = masked(OP_TEXT, &p);
            assert_eq!(parse(&f[..f.len() - 1]), Parsed::More);
            let Parsed::Frame(c, used) = parse(&f) else {
                panic!("a frame of {len}")
            };
            assert_eq!(
                (c.opcode, c.fin, c.payload.len(), used),
                (OP_TEXT, true, len, f.len())
            );
            assert_eq!(c.payload, p);
        }
        assert_eq!(parse(&encode(OP_TEXT, b"unmasked")), Parsed::Bad);
    }
}
