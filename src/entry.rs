//! What an input entry is: an IP network, an exact string (literal) or a glob pattern.
//!
//! Detection, in order: a `ip:`, `literal:` or `glob:` prefix forces the kind; otherwise a valid
//! IP address or CIDR is an IP entry; text with an unescaped `*`, `?` or `[` that parses as a glob
//! is a glob; text that looks like an IP or CIDR but is not a valid one (`1.2.3.256`,
//! `10.0.0.0/33`, `2001:db8::/129`) is an error, so a typo never becomes a silent literal;
//! anything else (including text that looks like a broken glob, e.g. `[abc`) is a literal.

use std::fmt;
use std::net::IpAddr;

use crate::glob::pattern;

/// One input entry, its kind decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// An IP network; host bits beyond `prefix_len` are cleared.
    Ip { addr: IpAddr, prefix_len: u8 },
    /// An exact string.
    Literal(String),
    /// A glob pattern (already checked to be valid).
    Glob(String),
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Ip { addr, prefix_len } => write!(f, "{addr}/{prefix_len}"),
            Entry::Literal(s) | Entry::Glob(s) => f.write_str(s),
        }
    }
}

/// Parse `a.b.c.d`, `a.b.c.d/len`, an IPv6 address or an IPv6 CIDR. Host bits are masked off.
pub(crate) fn parse_network(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => {
            // Only plain decimal lengths: "+8" or " 8" are not CIDRs.
            if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (a.parse::<IpAddr>().ok()?, Some(l.parse::<u8>().ok()?))
        }
        None => (text.parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    if len > max {
        return None;
    }
    Some((mask(addr, len), len))
}

/// `addr` with every bit past `len` cleared.
pub(crate) fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// Dotted quads (`1.2.3.256`, `10.0.0.0/33`) and IPv6-shaped text (with `::` or eight groups)
/// made only of address characters. MAC addresses (six groups, no `::`) are not IP-shaped.
fn looks_like_network(text: &str) -> bool {
    let addr = text.split_once('/').map_or(text, |(a, len)| {
        if len.bytes().all(|b| b.is_ascii_digit()) {
            a
        } else {
            ""
        }
    });
    if addr.is_empty() {
        return false;
    }
    let dotted = addr.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && addr.bytes().filter(|&b| b == b'.').count() == 3;
    let v6 = addr
        .bytes()
        .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        && (addr.contains("::") || addr.bytes().filter(|&b| b == b':').count() == 7);
    dotted || v6
}

/// Decide the kind of `text` (see the module docs). Errors say why a forced kind does not fit.
pub fn parse_entry(text: &str) -> Result<Entry, String> {
    if let Some(rest) = text.strip_prefix("ip:") {
        return parse_network(rest)
            .map(|(addr, prefix_len)| Entry::Ip { addr, prefix_len })
            .ok_or_else(|| format!("{rest:?} is not an IP address or CIDR network"));
    }
    if let Some(rest) = text.strip_prefix("literal:") {
        return if rest.is_empty() {
            Err("empty literal".to_string())
        } else {
            Ok(Entry::Literal(rest.to_string()))
        };
    }
    if let Some(rest) = text.strip_prefix("glob:") {
        return match pattern::validate(rest) {
            Ok(()) if !rest.is_empty() => Ok(Entry::Glob(rest.to_string())),
            Ok(()) => Err("empty glob".to_string()),
            Err(e) => Err(format!("invalid glob {rest:?}: {e}")),
        };
    }
    if text.is_empty() {
        return Err("empty entry".to_string());
    }
    if let Some((addr, prefix_len)) = parse_network(text) {
        return Ok(Entry::Ip { addr, prefix_len });
    }
    if looks_like_network(text) {
        return Err(format!(
            "{text:?} looks like an IP address or CIDR network but is not a valid one; \
             prefix it with literal: to store it as text"
        ));
    }
    if pattern::has_wildcard(text) && pattern::validate(text).is_ok() {
        return Ok(Entry::Glob(text.to_string()));
    }
    Ok(Entry::Literal(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str, len: u8) -> Entry {
        Entry::Ip {
            addr: s.parse().unwrap(),
            prefix_len: len,
        }
    }

    #[test]
    fn detects_each_kind() {
        assert_eq!(parse_entry("1.2.3.4").unwrap(), ip("1.2.3.4", 32));
        assert_eq!(parse_entry("10.1.2.3/8").unwrap(), ip("10.0.0.0", 8));
        assert_eq!(parse_entry("2001:db8::1/32").unwrap(), ip("2001:db8::", 32));
        assert_eq!(
            parse_entry("::ffff:1.2.3.4").unwrap(),
            ip("::ffff:1.2.3.4", 128)
        );
        assert_eq!(
            parse_entry("*.evil.com").unwrap(),
            Entry::Glob("*.evil.com".into())
        );
        assert_eq!(
            parse_entry("mal?ware[0-9].exe").unwrap(),
            Entry::Glob("mal?ware[0-9].exe".into())
        );
        assert_eq!(
            parse_entry("evil.com").unwrap(),
            Entry::Literal("evil.com".into())
        );
        // A broken glob is a literal, as is an escaped wildcard.
        assert_eq!(parse_entry("[abc").unwrap(), Entry::Literal("[abc".into()));
        assert_eq!(
            parse_entry(r"a\*b").unwrap(),
            Entry::Literal(r"a\*b".into())
        );
        // Broken IPs are errors, not silent literals; other dotted or colon text is literal.
        for broken in [
            "1.2.3.4/33",
            "1.2.3.256",
            "01.2.3.4",
            "2001:db8::/129",
            "2001:db8:::1",
        ] {
            let err = parse_entry(broken).unwrap_err();
            assert!(err.contains("literal:"), "{broken}: {err}");
        }
        for literal in [
            "2001:db8::g.com",
            "1.2.3.4/+8",
            "1.2.3",
            "00:11:22:33:44:55",
        ] {
            assert_eq!(
                parse_entry(literal).unwrap(),
                Entry::Literal(literal.into())
            );
        }
        assert_eq!(
            parse_entry("literal:1.2.3.256").unwrap(),
            Entry::Literal("1.2.3.256".into())
        );
    }

    #[test]
    fn prefixes_force_the_kind() {
        assert_eq!(
            parse_entry("literal:1.2.3.4").unwrap(),
            Entry::Literal("1.2.3.4".into())
        );
        assert_eq!(
            parse_entry("literal:*.com").unwrap(),
            Entry::Literal("*.com".into())
        );
        assert_eq!(parse_entry("glob:abc").unwrap(), Entry::Glob("abc".into()));
        assert_eq!(parse_entry("ip:10.0.0.0/8").unwrap(), ip("10.0.0.0", 8));
        assert!(parse_entry("ip:evil.com")
            .unwrap_err()
            .contains("not an IP"));
        assert!(parse_entry("glob:[abc")
            .unwrap_err()
            .contains("invalid glob"));
        assert!(parse_entry("").is_err());
        assert!(parse_entry("literal:").is_err());
    }
}
