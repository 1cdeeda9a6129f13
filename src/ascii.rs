//! ASCII-only header values: anything outside printable ASCII is written as a JSON-style
//! `\uXXXX` escape (UTF-16, so characters beyond the BMP become surrogate pairs).

use std::fmt::Write;

use http::HeaderValue;

/// Escapes `text` so that it is a valid, visible-ASCII header value.
pub fn escape(text: &str) -> String {
    if text.bytes().all(is_plain) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_ascii() && is_plain(c as u8) {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

/// A header value holding `text`, escaped as needed.
pub fn header_value(text: &str) -> HeaderValue {
    HeaderValue::try_from(escape(text)).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Printable ASCII and space (tab and controls are escaped).
fn is_plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ascii_is_unchanged() {
        assert_eq!(escape("user_2abc org:admin"), "user_2abc org:admin");
    }

    #[test]
    fn non_ascii_and_controls_are_escaped() {
        assert_eq!(escape("Zoë"), "Zo\\u00eb");
        assert_eq!(escape("a\r\nb"), "a\\u000d\\u000ab");
        assert_eq!(escape("😀"), "\\ud83d\\ude00");
        assert_eq!(escape("\u{7f}"), "\\u007f");
        assert!(header_value("東京\n").to_str().is_ok());
    }
}
