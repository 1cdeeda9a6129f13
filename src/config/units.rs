//! Human units in gateway.toml: durations (`"500ms"`, `"5s"`, `"2m"`, `"1h30m"`) and byte
//! sizes (`"512KiB"`, `"10MB"`). Pure parsing, no I/O.

use std::time::Duration;

/// Parses a duration made of one or more `<integer><unit>` parts, units `ms`, `s`, `m`, `h`.
///
/// # Errors
/// A message saying what was expected, for the caller to prefix with the key path.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = || format!("expected a duration like \"500ms\", \"5s\" or \"2m\", got {text:?}");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(expected());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let units = rest[digits..].bytes().take_while(u8::is_ascii_alphabetic).count();
        if digits == 0 || units == 0 {
            return Err(expected());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| expected())?;
        let part = match &rest[digits..digits + units] {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            _ => return Err(expected()),
        };
        total = total.saturating_add(part);
        rest = &rest[digits + units..];
    }
    Ok(total)
}

/// Parses a byte size: a plain integer, or an integer with `B`, `KB`, `KiB`, `MB`, `MiB`,
/// `GB` or `GiB`.
///
/// # Errors
/// A message saying what was expected.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let expected = || format!("expected a size like \"512KiB\" or \"10MB\", got {text:?}");
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(expected());
    }
    let value: u64 = text[..digits].parse().map_err(|_| expected())?;
    let scale: u64 = match text[digits..].trim_start() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        _ => return Err(expected()),
    };
    value.checked_mul(scale).ok_or_else(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "5", "s", "5 s", "-5s", "5sec", "1.5s", "5s5"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        for bad in ["", "MB", "1.5MB", "10XB", "-1", "99999999999999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should fail");
        }
    }
}
