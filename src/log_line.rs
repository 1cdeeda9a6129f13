//! Log lines formatted by hand for the hot path (the access log): the shapes
//! tracing-subscriber writes (text, or one flat JSON object), built in a buffer each thread
//! reuses and handed whole to the non-blocking log writer, so a request pays for a few
//! copies instead of tracing's per-event formatting. Without a sink (a library user, the
//! in-process tests) nothing is installed and callers log through `tracing` instead.

use std::cell::RefCell;
use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_appender::non_blocking::NonBlocking;

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `timestamp  LEVEL target: message key=value …`, coloured when `ansi`.
    Text {
        /// Colour codes (only for a terminal).
        ansi: bool,
    },
    /// One JSON object per line, every field at the top level.
    Json,
}

/// Where hand-formatted lines go: the writer the `tracing` subscriber writes through too,
/// so lines of both kinds keep their order.
pub struct Sink {
    format: Format,
    writer: NonBlocking,
}

static SINK: OnceLock<Sink> = OnceLock::new();

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
    static WRITER: RefCell<Option<NonBlocking>> = const { RefCell::new(None) };
    static CLOCK: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [0; 19])) };
}

/// Sends hand-formatted lines to `writer` from now on (once per process; later calls are
/// ignored).
pub fn install(format: Format, writer: NonBlocking) {
    let _ = SINK.set(Sink { format, writer });
}

/// The installed sink, if any.
pub fn sink() -> Option<&'static Sink> {
    SINK.get()
}

impl Sink {
    /// Writes one `INFO` line on `target` with `message`, its fields filled in by `fields`.
    pub fn info(&self, target: &str, message: &str, fields: impl FnOnce(&mut Line<'_>)) {
        BUFFER.with_borrow_mut(|buffer| {
            buffer.clear();
            let mut line = Line::start(buffer, self.format, SystemTime::now(), target, message);
            fields(&mut line);
            line.finish();
            WRITER.with_borrow_mut(|writer| {
                let writer = writer.get_or_insert_with(|| self.writer.clone());
                // Lossy by design: a full queue drops the line rather than stall a worker.
                let _ = writer.write_all(buffer);
            });
        });
    }
}

/// A line being written.
pub struct Line<'a> {
    out: &'a mut Vec<u8>,
    json: bool,
}

impl<'a> Line<'a> {
    /// Starts a line in `out` (which it appends to) with its timestamp, level and message.
    pub fn start(out: &'a mut Vec<u8>, format: Format, now: SystemTime, target: &str, message: &str) -> Self {
        let micros = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
        let (secs, fraction) = ((micros / 1_000_000) as u64, (micros % 1_000_000) as u32);
        let mut stamp = [0u8; 27];
        CLOCK.with_borrow_mut(|(cached, text)| {
            if *cached != secs {
                *text = date_time(secs);
                *cached = secs;
            }
            stamp[..19].copy_from_slice(text);
        });
        stamp[19] = b'.';
        write_padded(&mut stamp[20..26], fraction);
        stamp[26] = b'Z';
        match format {
            Format::Json => {
                out.extend_from_slice(b"{\"timestamp\":\"");
                out.extend_from_slice(&stamp);
                out.extend_from_slice(b"\",\"level\":\"INFO\",\"target\":");
                json_string(out, target);
                out.extend_from_slice(b",\"message\":");
                json_string(out, message);
            }
            Format::Text { ansi } => {
                let (dim, green, reset): (&[u8], &[u8], &[u8]) =
                    if ansi { (b"\x1b[2m", b"\x1b[32m", b"\x1b[0m") } else { (b"", b"", b"") };
                for part in [dim, &stamp[..], reset, b" ", green, b" INFO", reset, b" ", dim, target.as_bytes()] {
                    out.extend_from_slice(part);
                }
                for part in [b":".as_slice(), reset, b" ", message.as_bytes()] {
                    out.extend_from_slice(part);
                }
            }
        }
        Line { out, json: format == Format::Json }
    }

    fn key(&mut self, key: &str) {
        if self.json {
            self.out.extend_from_slice(b",\"");
            self.out.extend_from_slice(key.as_bytes());
            self.out.extend_from_slice(b"\":");
        } else {
            self.out.push(b' ');
            self.out.extend_from_slice(key.as_bytes());
            self.out.push(b'=');
        }
    }

    /// A string field (quoted and escaped in both formats).
    pub fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        if self.json { json_string(self.out, value) } else { quoted(self.out, value) }
    }

    /// A string field written bare in text (a path, an address: nothing to quote), escaped
    /// as a string in JSON.
    pub fn bare(&mut self, key: &str, value: &str) {
        self.key(key);
        if self.json {
            json_string(self.out, value);
        } else if value.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
            self.out.extend_from_slice(value.as_bytes());
        } else {
            quoted(self.out, value);
        }
    }

    /// An integer field.
    pub fn u64(&mut self, key: &str, value: u64) {
        self.key(key);
        self.out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn finish(self) {
        if self.json {
            self.out.push(b'}');
        }
        self.out.push(b'\n');
    }
}

/// `s` as a JSON string.
fn json_string(out: &mut Vec<u8>, s: &str) {
    escaped(out, s, |out, b| {
        out.extend_from_slice(b"\\u00");
        out.extend_from_slice(&hex_pair(b));
    });
}

/// `s` quoted the way `{:?}` quotes a string, control characters escaped.
fn quoted(out: &mut Vec<u8>, s: &str) {
    escaped(out, s, |out, b| {
        out.extend_from_slice(b"\\u{");
        out.extend_from_slice(&hex_pair(b));
        out.push(b'}');
    });
}

/// `s` in double quotes with `"`, `\` and newlines escaped and every other control byte
/// written by `control`; runs that need no escape are copied whole.
fn escaped(out: &mut Vec<u8>, s: &str, control: impl Fn(&mut Vec<u8>, u8)) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut clean = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' && b != 0x7f {
            continue;
        }
        out.extend_from_slice(&bytes[clean..i]);
        clean = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => control(out, b),
        }
    }
    out.extend_from_slice(&bytes[clean..]);
    out.push(b'"');
}

fn hex_pair(b: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]
}

/// Writes `n` as `out.len()` decimal digits, zero-padded.
fn write_padded(out: &mut [u8], mut n: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) for `secs` since the epoch (days to civil date after Howard
/// Hinnant's `civil_from_days`).
fn date_time(secs: u64) -> [u8; 19] {
    let (days, rest) = ((secs / 86_400) as i64, (secs % 86_400) as u32);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u32;
    let mut text = *b"0000-00-00T00:00:00";
    write_padded(&mut text[0..4], year);
    write_padded(&mut text[5..7], month);
    write_padded(&mut text[8..10], day);
    write_padded(&mut text[11..13], rest / 3_600);
    write_padded(&mut text[14..16], rest / 60 % 60);
    write_padded(&mut text[17..19], rest % 60);
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn line(format: Format, fields: impl FnOnce(&mut Line<'_>)) -> String {
        let at = UNIX_EPOCH + Duration::from_micros(1_796_237_154_000_042);
        let mut out = Vec::new();
        let mut line = Line::start(&mut out, format, at, "clerk_gateway::access", "request");
        fields(&mut line);
        line.finish();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(&date_time(0), b"1970-01-01T00:00:00");
        assert_eq!(&date_time(951_782_400), b"2000-02-29T00:00:00");
        assert_eq!(&date_time(1_796_237_154), b"2026-12-02T18:45:54");
        assert_eq!(&date_time(4_107_542_399), b"2100-02-28T23:59:59");
    }

    #[test]
    fn text_lines_read_like_tracing_ones() {
        let text = line(Format::Text { ansi: false }, |l| {
            l.bare("path", "/api/x");
            l.str("route", "say \"hi\"\n");
            l.u64("status", 200);
        });
        assert_eq!(
            text,
            "2026-12-02T18:45:54.000042Z  INFO clerk_gateway::access: request path=/api/x \
             route=\"say \\\"hi\\\"\\n\" status=200\n"
        );
    }

    #[test]
    fn json_lines_are_flat_objects_that_parse() {
        let text = line(Format::Json, |l| {
            l.bare("path", "/a b");
            l.str("user_id", "user_\u{1}\"x\\");
            l.u64("bytes_out", u64::MAX);
        });
        assert!(text.ends_with("}\n"), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["timestamp"], "2026-12-02T18:45:54.000042Z");
        assert_eq!((value["level"].as_str(), value["message"].as_str()), (Some("INFO"), Some("request")));
        assert_eq!(value["target"], "clerk_gateway::access");
        assert_eq!((value["path"].as_str(), value["user_id"].as_str()), (Some("/a b"), Some("user_\u{1}\"x\\")));
        assert_eq!(value["bytes_out"].as_u64(), Some(u64::MAX));
    }

    #[test]
    fn odd_text_values_are_quoted() {
        let text = line(Format::Text { ansi: false }, |l| l.bare("path", "/a b"));
        assert!(text.ends_with(" path=\"/a b\"\n"), "{text}");
    }
}
