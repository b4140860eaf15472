//! RESP2, the Redis serialisation protocol: requests in, replies out.
//!
//! A request is an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or
//! an inline command (`PING\r\n`), as redis-cli and redis-benchmark send them.
//! The parser works on a buffer and never blocks: it answers "a whole command
//! and how many bytes it took", "not enough bytes yet", or a protocol error
//! after which the connection is closed (as Redis does). Every length is
//! capped before anything is allocated, so no header can make a node reserve
//! memory it was not sent.

use std::fmt;

/// The largest bulk string accepted: one key-value operation's bound.
pub const MAX_BULK: usize = crate::net::MAX_OP_BYTES;
/// The most arguments one command may have (an MGET of many keys).
pub const MAX_ARGS: usize = 65_536;
/// The longest inline command line.
pub const MAX_INLINE: usize = 64 * 1024;

/// Replies are written out once this many bytes wait (and at the end of
/// every batch of commands read): what a connection holds of its replies is
/// this plus one reply element (at most one value, 1 MiB).
pub const FLUSH_AT: usize = 64 * 1024;

/// Where a connection's replies go: a small buffer, written to the socket as
/// it fills, so a reply of many values (an MGET, a pipeline) is never built
/// whole in memory.
pub struct Replies<'a> {
    buf: Vec<u8>,
    sink: Option<&'a mut dyn std::io::Write>,
    cut: bool,
    failed: bool,
}

impl<'a> Replies<'a> {
    /// Replies written to `sink` as they fill [`FLUSH_AT`].
    pub fn to(sink: &'a mut dyn std::io::Write) -> Replies<'a> {
        Replies {
            buf: Vec::with_capacity(FLUSH_AT),
            sink: Some(sink),
            cut: false,
            failed: false,
        }
    }

    /// Replies kept in memory (tests).
    pub fn buffer() -> Replies<'static> {
        Replies {
            buf: Vec::new(),
            sink: None,
            cut: false,
            failed: false,
        }
    }

    /// Add one reply (or one element of an array whose header was sent).
    pub fn frame(&mut self, f: &Frame) {
        f.encode(&mut self.buf);
        self.spill();
    }

    /// Start an array of `n` elements, each then given to [`Replies::frame`].
    pub fn array(&mut self, n: usize) {
        self.buf.extend_from_slice(format!("*{n}\r\n").as_bytes());
    }

    /// Mark the stream as cut (a reply left unfinished): the connection must
    /// be closed.
    pub fn cut(&mut self) {
        self.cut = true;
    }

    /// True if the socket failed or a reply was left unfinished.
    pub fn broken(&self) -> bool {
        self.cut || self.failed
    }

    fn spill(&mut self) {
        if self.buf.len() >= FLUSH_AT && self.sink.is_some() {
            let _ = self.flush();
        }
    }

    /// Write out what waits.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if self.failed {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        if let Some(sink) = self.sink.as_mut() {
            if !self.buf.is_empty() {
                let r = sink.write_all(&self.buf);
                self.buf.clear();
                if let Err(e) = r {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The bytes kept (of [`Replies::buffer`]).
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// A request the parser cannot read: the connection gets this as an error
/// reply and is closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::error::Error for ProtocolError {}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

/// One parsed command: its arguments, the name first.
pub type Args = Vec<Vec<u8>>;

/// Parse one command from the front of `buf`: `Ok(Some((args, used)))`, or
/// `Ok(None)` if `buf` does not hold a whole command yet. An empty command
/// (a blank inline line, `*0`) parses as empty `args`.
pub fn parse(buf: &[u8]) -> Result<Option<(Args, usize)>, ProtocolError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_array(buf),
        Some(_) => parse_inline(buf),
    }
}

fn err<T>(what: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(what.into()))
}

/// The line starting at `at` (without its CRLF) and the index after it.
fn line(buf: &[u8], at: usize, cap: usize) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let rest = &buf[at..];
    match rest.iter().take(cap + 2).position(|&b| b == b'\n') {
        Some(i) => {
            let text = &rest[..i];
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            Ok(Some((text, at + i + 1)))
        }
        None if rest.len() > cap + 1 => err("too big inline request"),
        None => Ok(None),
    }
}

fn number(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn parse_array(buf: &[u8]) -> Result<Option<(Args, usize)>, ProtocolError> {
    let Some((head, mut at)) = line(buf, 0, 32)? else {
        return Ok(None);
    };
    let n = match number(&head[1..]) {
        Some(n) if n <= 0 => return Ok(Some((Vec::new(), at))),
        Some(n) if n as u64 <= MAX_ARGS as u64 => n as usize,
        _ => return err("invalid multibulk length"),
    };
    let mut args = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let Some((head, body)) = line(buf, at, 32)? else {
            return Ok(None);
        };
        if head.first() != Some(&b'$') {
            let got = head.first().map_or("nothing".to_string(), |&b| {
                format!("'{}'", char::from(b).escape_default())
            });
            return err(format!("expected '$', got {got}"));
        }
        let len = match number(&head[1..]) {
            Some(l) if l >= 0 && l as u64 <= MAX_BULK as u64 => l as usize,
            _ => return err("invalid bulk length"),
        };
        if buf.len() < body + len + 2 {
            return Ok(None);
        }
        if &buf[body + len..body + len + 2] != b"\r\n" {
            return err("bulk string not followed by CRLF");
        }
        args.push(buf[body..body + len].to_vec());
        at = body + len + 2;
    }
    Ok(Some((args, at)))
}

fn parse_inline(buf: &[u8]) -> Result<Option<(Args, usize)>, ProtocolError> {
    let Some((text, used)) = line(buf, 0, MAX_INLINE)? else {
        return Ok(None);
    };
    let args = text
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    Ok(Some((args, used)))
}

/// A reply, as RESP2 encodes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`: the text includes the error code (`ERR`, `NOAUTH`, ...).
    Error(String),
    /// `:3`
    Int(i64),
    /// `$5\r\nhello` or the null bulk `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...`
    Array(Vec<Frame>),
}

impl Frame {
    /// `+OK`.
    pub fn ok() -> Frame {
        Frame::Simple("OK".into())
    }

    /// `-ERR <text>`.
    pub fn err(text: impl fmt::Display) -> Frame {
        Frame::Error(format!("ERR {text}"))
    }

    /// A bulk string.
    pub fn bulk(bytes: impl Into<Vec<u8>>) -> Frame {
        Frame::Bulk(Some(bytes.into()))
    }

    /// The null bulk string.
    pub fn nil() -> Frame {
        Frame::Bulk(None)
    }

    /// Append the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Simple(s) => {
                out.push(b'+');
                out.extend_from_slice(s.as_bytes());
            }
            Frame::Error(e) => {
                out.push(b'-');
                // An error is one line.
                out.extend(
                    e.bytes()
                        .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
                );
            }
            Frame::Int(i) => out.extend_from_slice(format!(":{i}").as_bytes()),
            Frame::Bulk(None) => out.extend_from_slice(b"$-1"),
            Frame::Bulk(Some(b)) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Frame::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for item in items {
                    item.encode(out);
                }
                return;
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Parse one reply from the front of `buf` (what a RESP client reads):
/// `Ok(Some((reply, used)))`, or `Ok(None)` if it is not whole yet.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Frame, usize)>, ProtocolError> {
    reply_at(buf, 0, 0)
}

fn reply_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Frame, usize)>, ProtocolError> {
    if depth > 8 {
        return err("replies nested too deep");
    }
    let Some((head, next)) = line(buf, at, MAX_INLINE)? else {
        return Ok(None);
    };
    let Some((&kind, body)) = head.split_first() else {
        return err("empty reply line");
    };
    let text = || String::from_utf8_lossy(body).into_owned();
    let n = || number(body).ok_or_else(|| ProtocolError(format!("bad length {:?}", text())));
    Ok(Some(match kind {
        b'+' => (Frame::Simple(text()), next),
        b'-' => (Frame::Error(text()), next),
        b':' => (Frame::Int(n()?), next),
        b'$' => match n()? {
            -1 => (Frame::nil(), next),
            l if l < 0 || l as u64 > MAX_BULK as u64 => return err("invalid bulk length"),
            l => {
                let l = l as usize;
                if buf.len() < next + l + 2 {
                    return Ok(None);
                }
                (Frame::bulk(buf[next..next + l].to_vec()), next + l + 2)
            }
        },
        b'*' => match n()? {
            -1 => (Frame::Array(Vec::new()), next),
            c if c < 0 || c as u64 > MAX_ARGS as u64 => return err("invalid multibulk length"),
            c => {
                let mut items = Vec::with_capacity((c as usize).min(64));
                let mut at = next;
                for _ in 0..c {
                    let Some((item, used)) = reply_at(buf, at, depth + 1)? else {
                        return Ok(None);
                    };
                    items.push(item);
                    at = used;
                }
                (Frame::Array(items), at)
            }
        },
        other => {
            return err(format!(
                "unknown reply type '{}'",
                char::from(other).escape_default()
            ))
        }
    }))
}

/// A command as RESP encodes it: an array of bulk strings.
pub fn command(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Args {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn arrays_and_inline_commands_parse() {
        let buf = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n";
        let (a, used) = parse(buf).unwrap().unwrap();
        assert_eq!(a, args(&["GET", "k"]));
        let (b, used2) = parse(&buf[used..]).unwrap().unwrap();
        assert_eq!(b, args(&["PING"]));
        assert_eq!(used + used2, buf.len());
        // Binary-safe bulk strings: CRLF inside is data.
        let (c, _) = parse(b"*1\r\n$4\r\na\r\nb\r\n").unwrap().unwrap();
        assert_eq!(c, vec![b"a\r\nb".to_vec()]);
        let (d, _) = parse(b"  set  k   v \n").unwrap().unwrap();
        assert_eq!(d, args(&["set", "k", "v"]));
        assert_eq!(parse(b"*0\r\n").unwrap().unwrap().0.len(), 0);
    }

    #[test]
    fn a_command_cut_anywhere_waits_for_the_rest() {
        let buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        for cut in 0..buf.len() {
            assert_eq!(parse(&buf[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(parse(buf).unwrap().is_some());
    }

    #[test]
    fn lengths_are_capped_before_anything_is_allocated() {
        let big = format!("*1\r\n${}\r\n", MAX_BULK + 1);
        assert_eq!(parse(big.as_bytes()).unwrap_err().0, "invalid bulk length");
        let many = format!("*{}\r\n", MAX_ARGS + 1);
        assert_eq!(
            parse(many.as_bytes()).unwrap_err().0,
            "invalid multibulk length"
        );
        assert!(parse(b"*x\r\n").is_err());
        assert!(parse(b"*1\r\n$-5\r\n").is_err());
        assert!(parse(b"*1\r\n:5\r\n")
            .unwrap_err()
            .0
            .contains("expected '$'"));
        assert!(parse(b"*1\r\n$1\r\nab\r\n").is_err());
        let long = vec![b'a'; MAX_INLINE + 10];
        assert_eq!(parse(&long).unwrap_err().0, "too big inline request");
    }

    #[test]
    fn replies_encode_as_resp2() {
        let mut out = Vec::new();
        Frame::Array(vec![
            Frame::ok(),
            Frame::err("no\r\nway"),
            Frame::Int(-2),
            Frame::bulk("hi"),
            Frame::nil(),
        ])
        .encode(&mut out);
        assert_eq!(
            out,
            b"*5\r\n+OK\r\n-ERR no  way\r\n:-2\r\n$2\r\nhi\r\n$-1\r\n"
        );
        // And read back whole, or not at all while cut short.
        let (back, used) = parse_reply(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        assert_eq!(
            back,
            Frame::Array(vec![
                Frame::ok(),
                Frame::err("no  way"),
                Frame::Int(-2),
                Frame::bulk("hi"),
                Frame::nil(),
            ])
        );
        for cut in 0..out.len() {
            assert_eq!(parse_reply(&out[..cut]).unwrap(), None, "cut at {cut}");
        }
        let mut cmd = Vec::new();
        command(&[b"SET", b"k", b"v w"], &mut cmd);
        let (args, _) = parse(&cmd).unwrap().unwrap();
        assert_eq!(args, vec![b"SET".to_vec(), b"k".to_vec(), b"v w".to_vec()]);
    }
}
