//! Formats of the date and time nodes: strftime strings, Go reference layouts and Go's named
//! layouts, translated to strftime (Rune's nodes take Go layouts).

use std::fmt::Write as _;

use baton_engine::NodeError;
use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Offset};
use chrono_tz::Tz;

/// Formats with a strftime string, a Go layout or a Go layout name.
pub fn format_date(d: &DateTime<Tz>, format: &str) -> Result<String, NodeError> {
    let strftime = match go_layout(format) {
        Some(layout) => go_to_strftime(
            layout,
            GoMode::Format {
                utc: d.offset().fix().local_minus_utc() == 0,
            },
        ),
        None => format.to_string(),
    };
    let items = StrftimeItems::new(&strftime)
        .parse()
        .map_err(|_| invalid_format(format))?;
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(invalid_format(format));
    }
    let mut out = String::new();
    write!(out, "{}", d.format_with_items(items.iter())).map_err(|_| invalid_format(format))?;
    Ok(out)
}

fn invalid_format(format: &str) -> NodeError {
    NodeError::invalid(format!(
        "parameter `format`: expected a strftime format (`%Y-%m-%d %H:%M`) or a Go layout (`2006-01-02 15:04`), found `{format}`"
    ))
}

/// The strftime layout to parse with for a `format` parameter.
pub(super) fn parse_layout(format: &str) -> String {
    match go_layout(format) {
        Some(layout) => go_to_strftime(layout, GoMode::Parse),
        None => format.to_string(),
    }
}

/// Go's named layouts (`time.RFC3339`, …).
const GO_NAMED: &[(&str, &str)] = &[
    ("ANSIC", "Mon Jan _2 15:04:05 2006"),
    ("UnixDate", "Mon Jan _2 15:04:05 MST 2006"),
    ("RubyDate", "Mon Jan 02 15:04:05 -0700 2006"),
    ("RFC822", "02 Jan 06 15:04 MST"),
    ("RFC822Z", "02 Jan 06 15:04 -0700"),
    ("RFC850", "Monday, 02-Jan-06 15:04:05 MST"),
    ("RFC1123", "Mon, 02 Jan 2006 15:04:05 MST"),
    ("RFC1123Z", "Mon, 02 Jan 2006 15:04:05 -0700"),
    ("RFC3339", "2006-01-02T15:04:05Z07:00"),
    ("RFC3339Nano", "2006-01-02T15:04:05.999999999Z07:00"),
    ("Kitchen", "3:04PM"),
    ("Stamp", "Jan _2 15:04:05"),
    ("StampMilli", "Jan _2 15:04:05.000"),
    ("StampMicro", "Jan _2 15:04:05.000000"),
    ("StampNano", "Jan _2 15:04:05.000000000"),
    ("DateTime", "2006-01-02 15:04:05"),
    ("DateOnly", "2006-01-02"),
    ("TimeOnly", "15:04:05"),
];

/// Reference tokens whose presence marks a Go layout.
const GO_TOKENS: &[&str] = &[
    "2006", "Jan", "Mon", "MST", "Z07", "-07", "15", "01", "02", "03", "04", "05", "06", "PM",
    "pm", "_2",
];

/// The Go layout `format` denotes, if it is one (and not strftime): a Go layout name, or text
/// without strftime directives that contains a Go reference token.
pub fn go_layout(format: &str) -> Option<&str> {
    if let Some((_, layout)) = GO_NAMED.iter().find(|(name, _)| *name == format) {
        return Some(layout);
    }
    if has_strftime_directive(format) {
        return None;
    }
    GO_TOKENS
        .iter()
        .any(|t| format.contains(t))
        .then_some(format)
}

fn has_strftime_directive(format: &str) -> bool {
    let bytes = format.as_bytes();
    bytes.windows(2).any(|w| {
        w[0] == b'%' && (w[1].is_ascii_alphabetic() || b"-_0.:#+%123456789".contains(&w[1]))
    })
}

/// Whether a Go layout is translated for formatting (with the offset known) or for parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoMode {
    /// `utc`: the `Z07:00` family prints `Z`.
    Format {
        utc: bool,
    },
    Parse,
}

/// Translates a Go reference layout to strftime (after Go's `nextStdChunk`).
pub fn go_to_strftime(layout: &str, mode: GoMode) -> String {
    let parse = mode == GoMode::Parse;
    let zulu = matches!(mode, GoMode::Format { utc: true });
    let mut out = String::with_capacity(layout.len() * 2);
    let mut rest = layout;
    // Longest tokens first within each starting character.
    const TOKENS: &[(&str, &str)] = &[
        ("January", "%B"),
        ("Jan", "%b"),
        ("Monday", "%A"),
        ("Mon", "%a"),
        ("MST", "%Z"),
        ("2006", "%Y"),
        ("002", "%j"),
        ("01", "%m"),
        ("02", "%d"),
        ("03", "%I"),
        ("04", "%M"),
        ("05", "%S"),
        ("06", "%y"),
        ("15", "%H"),
        ("_2", "%e"),
        ("1", "%-m"),
        ("2", "%-d"),
        ("3", "%-I"),
        ("4", "%-M"),
        ("5", "%-S"),
        ("PM", "%p"),
        ("pm", "%P"),
        ("-07:00:00", "%::z"),
        ("-070000", "%z"),
        ("-07:00", "%:z"),
        ("-0700", "%z"),
        ("-07", "%:::z"),
    ];
    const ZULU: &[(&str, &str)] = &[
        ("Z07:00:00", "%::z"),
        ("Z070000", "%z"),
        ("Z07:00", "%:z"),
        ("Z0700", "%z"),
        ("Z07", "%:::z"),
    ];
    'scan: while !rest.is_empty() {
        // `_2006` is a literal underscore followed by the year.
        if rest.starts_with("_2006") {
            out.push('_');
            rest = &rest[1..];
            continue;
        }
        for (token, strf) in ZULU {
            if let Some(after) = rest.strip_prefix(token) {
                out.push_str(if parse {
                    "%#z"
                } else if zulu {
                    "Z"
                } else {
                    strf
                });
                rest = after;
                continue 'scan;
            }
        }
        for (token, strf) in TOKENS {
            if let Some(after) = rest.strip_prefix(token) {
                out.push_str(if parse && strf.ends_with('z') {
                    "%#z"
                } else {
                    strf
                });
                rest = after;
                continue 'scan;
            }
        }
        // Fractional seconds: `.000`, `,000` (fixed) or `.999` (trailing zeros trimmed).
        let b = rest.as_bytes();
        if (b[0] == b'.' || b[0] == b',') && b.len() > 1 && (b[1] == b'0' || b[1] == b'9') {
            let digit = b[1];
            let n = b[1..].iter().take_while(|&&c| c == digit).count();
            if !b.get(1 + n).is_some_and(u8::is_ascii_digit) {
                let width = match n {
                    0..=3 => 3,
                    4..=6 => 6,
                    _ => 9,
                };
                if digit == b'9' || parse {
                    out.push_str(if b[0] == b'.' { "%.f" } else { ",%f" });
                } else {
                    out.push(b[0] as char);
                    let _ = write!(out, "%{width}f");
                }
                rest = &rest[1 + n..];
                continue;
            }
        }
        let ch = rest.chars().next().unwrap_or_default();
        if ch == '%' {
            out.push_str("%%");
        } else {
            out.push(ch);
        }
        rest = &rest[ch.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datetime::DEFAULT_FORMAT;

    #[test]
    fn go_layouts_translate() {
        assert_eq!(
            go_to_strftime(DEFAULT_FORMAT, GoMode::Format { utc: false }),
            "%Y-%m-%dT%H:%M:%S%:z"
        );
        assert_eq!(
            go_to_strftime(DEFAULT_FORMAT, GoMode::Format { utc: true }),
            "%Y-%m-%dT%H:%M:%SZ"
        );
        assert_eq!(
            go_to_strftime("Mon, 02 Jan 2006 15:04:05 MST", GoMode::Parse),
            "%a, %d %b %Y %H:%M:%S %Z"
        );
        assert_eq!(
            go_to_strftime("3:04PM at 9%", GoMode::Parse),
            "%-I:%M%p at 9%%"
        );
        assert_eq!(
            go_to_strftime("15:04:05.000", GoMode::Format { utc: false }),
            "%H:%M:%S.%3f"
        );
        assert!(go_layout("%Y-%m-%d").is_none());
        assert!(go_layout("2006-01-02").is_some());
        assert!(go_layout("at noon").is_none());
    }
}
