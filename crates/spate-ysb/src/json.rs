//! Parsing YSB's JSON events without allocating: [`AdEventRef`] borrows its 7 fields from the
//! record.
//!
//! Two paths. The fast one checks the exact layout YSB's generator writes, literal by literal
//! (the speculation Mison and pikkr use: guess the layout, verify it). Anything else goes to a
//! general scanner of flat objects of string or number fields in any order. Both reject escapes
//! (never present in YSB's UUIDs, words and digits) rather than allocate for them. On these
//! records the fast path takes about 90 ns, serde_json with borrowed `&str` fields about 280.

use crate::error::YsbError;
use crate::events::{parse_i64, parse_uuid, AdEvent, AdType, EventType};

/// A JSON ad event with its 7 fields borrowed from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdEventRef<'a> {
    /// `user_id`, a UUID as written.
    pub user_id: &'a str,
    /// `page_id`, a UUID as written.
    pub page_id: &'a str,
    /// `ad_id`, a UUID as written (the join key to the campaign).
    pub ad_id: &'a str,
    /// `ad_type`, e.g. `banner`.
    pub ad_type: &'a str,
    /// `event_type`: `view`, `click` or `purchase`.
    pub event_type: &'a str,
    /// The event time as written (YSB writes it as a string of epoch milliseconds).
    pub event_time: &'a str,
    /// `ip_address`, dotted quad as written.
    pub ip_address: &'a str,
}

impl<'a> AdEventRef<'a> {
    /// Scans a flat JSON object of string or number values (see the module docs); unknown
    /// fields are skipped, all 7 YSB fields are required.
    pub fn parse_json(b: &'a [u8]) -> Result<AdEventRef<'a>, YsbError> {
        // One UTF-8 check for the whole record (a fast ASCII path), then byte scanning with
        // memchr; slicing the checked `&str` at ASCII quotes is always on a char boundary.
        let text = std::str::from_utf8(b)
            .map_err(|_| YsbError::Malformed("the JSON event is not UTF-8".into()))?;
        if let Some(e) = Self::parse_generator_layout(text) {
            return Ok(e);
        }
        let mut fields: [&'a str; 7] = [""; 7];
        let mut seen = 0u8;
        let mut s = Scanner { text, i: 0 };
        s.ws();
        s.expect(b'{')?;
        s.ws();
        if s.peek() == Some(b'}') {
            s.i += 1;
        } else {
            loop {
                s.ws();
                let key = s.string()?;
                s.ws();
                s.expect(b':')?;
                s.ws();
                let value = if s.peek() == Some(b'"') {
                    s.string()?
                } else {
                    s.bare()?
                };
                let slot = match key.as_bytes() {
                    b"user_id" => 0,
                    b"page_id" => 1,
                    b"ad_id" => 2,
                    b"ad_type" => 3,
                    b"event_type" => 4,
                    b"event_time" => 5,
                    b"ip_address" => 6,
                    _ => usize::MAX,
                };
                if let Some(f) = fields.get_mut(slot) {
                    *f = value;
                    seen |= 1 << slot;
                }
                s.ws();
                match s.next() {
                    Some(b',') => continue,
                    Some(b'}') => break,
                    _ => return Err(s.error("expected ',' or '}'")),
                }
            }
        }
        s.ws();
        if s.i != b.len() {
            return Err(s.error("trailing data after the object"));
        }
        if seen != 0x7f {
            const NAMES: [&str; 7] = [
                "user_id",
                "page_id",
                "ad_id",
                "ad_type",
                "event_type",
                "event_time",
                "ip_address",
            ];
            let missing: Vec<&str> = (0..7)
                .filter(|i| seen & (1 << i) == 0)
                .map(|i| NAMES[i])
                .collect();
            return Err(YsbError::Malformed(format!(
                "no {} field",
                missing.join(", ")
            )));
        }
        Ok(AdEventRef {
            user_id: fields[0],
            page_id: fields[1],
            ad_id: fields[2],
            ad_type: fields[3],
            event_type: fields[4],
            event_time: fields[5],
            ip_address: fields[6],
        })
    }

    /// The fast path: the exact field order and separators YSB's generator writes, checked
    /// literal by literal; `None` on any difference, and the general scanner takes over.
    fn parse_generator_layout(text: &'a str) -> Option<AdEventRef<'a>> {
        const KEYS: [&[u8]; 7] = [
            b"{\"user_id\": \"",
            b"\", \"page_id\": \"",
            b"\", \"ad_id\": \"",
            b"\", \"ad_type\": \"",
            b"\", \"event_type\": \"",
            b"\", \"event_time\": \"",
            b"\", \"ip_address\": \"",
        ];
        let b = text.as_bytes();
        let mut fields: [&'a str; 7] = [""; 7];
        let mut i = 0;
        for (key, field) in KEYS.iter().zip(fields.iter_mut()) {
            if !b.get(i..)?.starts_with(key) {
                return None;
            }
            i += key.len();
            let len = b.get(i..)?.iter().position(|&c| c == b'"' || c == b'\\')?;
            if b[i + len] != b'"' {
                return None;
            }
            *field = text.get(i..i + len)?;
            i += len;
        }
        if b.get(i..)? != b"\"}" {
            return None;
        }
        Some(AdEventRef {
            user_id: fields[0],
            page_id: fields[1],
            ad_id: fields[2],
            ad_type: fields[3],
            event_type: fields[4],
            event_time: fields[5],
            ip_address: fields[6],
        })
    }

    /// The event time in epoch milliseconds.
    pub fn event_time_ms(&self) -> Result<i64, YsbError> {
        parse_i64(self.event_time.as_bytes())
            .ok_or_else(|| YsbError::Malformed(format!("event_time {:?}", self.event_time)))
    }

    /// Converts to the owned model, validating every field.
    pub fn to_owned_event(&self) -> Result<AdEvent, YsbError> {
        let id = |name: &str, s: &str| {
            parse_uuid(s.as_bytes()).ok_or_else(|| YsbError::Malformed(format!("{name} {s:?}")))
        };
        Ok(AdEvent {
            user_id: id("user_id", self.user_id)?,
            page_id: id("page_id", self.page_id)?,
            ad_id: id("ad_id", self.ad_id)?,
            ad_type: AdType::parse(self.ad_type)
                .ok_or_else(|| YsbError::Malformed(format!("ad_type {:?}", self.ad_type)))?,
            event_type: EventType::parse(self.event_type)
                .ok_or_else(|| YsbError::Malformed(format!("event_type {:?}", self.event_type)))?,
            event_time: self.event_time_ms()?,
            ip_address: self
                .ip_address
                .parse()
                .map_err(|_| YsbError::Malformed(format!("ip_address {:?}", self.ip_address)))?,
        })
    }
}

struct Scanner<'a> {
    text: &'a str,
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    fn error(&self, what: &str) -> YsbError {
        YsbError::Malformed(format!("{what} at byte {} of the JSON event", self.i))
    }

    fn expect(&mut self, c: u8) -> Result<(), YsbError> {
        if self.next() == Some(c) {
            Ok(())
        } else {
            Err(self.error(&format!("expected {:?}", c as char)))
        }
    }

    /// A string without escapes; returns its contents. Control characters, which JSON
    /// forbids unescaped, are not looked for: they cannot be mistaken for structure.
    fn string(&mut self) -> Result<&'a str, YsbError> {
        self.expect(b'"')?;
        let start = self.i;
        let rest = &self.text.as_bytes()[start..];
        let Some(len) = memchr::memchr2(b'"', b'\\', rest) else {
            return Err(self.error("unterminated string"));
        };
        if rest[len] != b'"' {
            return Err(self.error("escaped character in a string"));
        }
        self.i = start + len + 1;
        self.text
            .get(start..start + len)
            .ok_or_else(|| self.error("string not on a character boundary"))
    }

    /// A number, `true`, `false` or `null`: everything up to the next separator.
    fn bare(&mut self) -> Result<&'a str, YsbError> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if matches!(c, b',' | b'}' | b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            if matches!(c, b'{' | b'[' | b'"') {
                return Err(self.error("nested or malformed value"));
            }
            self.i += 1;
        }
        if self.i == start {
            return Err(self.error("missing value"));
        }
        self.text
            .get(start..self.i)
            .ok_or_else(|| self.error("value not on a character boundary"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::setup::sample_event as sample;

    #[test]
    fn the_layout_fast_path_and_the_general_scanner_agree() {
        let (_, e) = sample();
        let mut buf = Vec::new();
        e.encode_json(&mut buf);
        let fast = AdEventRef::parse_generator_layout(std::str::from_utf8(&buf).unwrap());
        assert!(
            fast.is_some(),
            "the generator's own layout takes the fast path"
        );
        // Same content, other spacing: only the general scanner reads it.
        let text = String::from_utf8(buf.clone())
            .unwrap()
            .replace("\": \"", "\":\"");
        assert!(AdEventRef::parse_generator_layout(&text).is_none());
        assert_eq!(
            AdEventRef::parse_json(text.as_bytes()).unwrap(),
            fast.unwrap()
        );
        // An escape inside a value is refused by both.
        let escaped = String::from_utf8(buf)
            .unwrap()
            .replace("1.2.3.4", "1.2\\\".3.4");
        assert!(AdEventRef::parse_json(escaped.as_bytes()).is_err());
    }

    #[test]
    fn scanner_accepts_any_order_and_numbers_and_rejects_garbage() {
        let j = br#" { "event_time" : 12, "ad_id":"a","x":null, "user_id":"u","page_id":"p","ad_type":"mail","event_type":"view","ip_address":"1.2.3.4" } "#;
        let e = AdEventRef::parse_json(j).unwrap();
        assert_eq!((e.ad_id, e.event_time), ("a", "12"));
        assert_eq!(e.event_time_ms().unwrap(), 12);
        for bad in [
            &br#"{"ad_id":"a"}"#[..],
            br#"{"ad_id":"a\"b","#,
            br#"{"ad_id" "a"}"#,
            b"",
            br#"{"event_time":{"n":1}}"#,
            br#"{"user_id":"u","page_id":"p","ad_id":"a","ad_type":"t","event_type":"view","event_time":"1","ip_address":"1"} x"#,
        ] {
            assert!(
                AdEventRef::parse_json(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
