//! The Yahoo Streaming Benchmark's ad events: the model, the two wire encodings (YSB's ~253-byte
//! JSON, exactly the shape `core.clj` writes — field order, `": "` separators, the event time
//! as a string — and a 62-byte fixed binary layout that takes parsing out of the measurement),
//! and [`view_of`], the job's parse → filter → project → join step on one record.
//!
//! Parsing JSON lives in [`crate::json`], the seeded set-up and the campaign map in
//! [`crate::setup`], decoding either encoding and the job's view of a record in [`crate::view`];
//! all build on this module, which depends on none of them.

use std::io::Write as _;
use std::net::Ipv4Addr;

use crate::error::YsbError;

/// Campaigns in YSB's set-up.
pub const CAMPAIGNS: usize = 100;
/// Ads per campaign.
pub const ADS_PER_CAMPAIGN: usize = 10;
/// Distinct user ids and page ids the generator draws from.
pub const USERS: usize = 100;
/// YSB's tumbling window, in milliseconds.
pub const WINDOW_MS: i64 = 10_000;
/// Length of [`AdEvent::encode_binary`]'s output.
pub const BINARY_LEN: usize = 62;

/// The start of the 10-second window `event_time` falls in.
pub fn window_start(event_time: i64) -> i64 {
    event_time.div_euclid(WINDOW_MS) * WINDOW_MS
}

/// YSB's `ad_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdType {
    /// `banner`.
    Banner,
    /// `modal`.
    Modal,
    /// `sponsored-search`.
    SponsoredSearch,
    /// `mail`.
    Mail,
    /// `mobile`.
    Mobile,
}

impl AdType {
    /// Every ad type, in the order the generator draws from.
    pub const ALL: [AdType; 5] = [
        AdType::Banner,
        AdType::Modal,
        AdType::SponsoredSearch,
        AdType::Mail,
        AdType::Mobile,
    ];

    /// The name YSB writes in the JSON `ad_type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            AdType::Banner => "banner",
            AdType::Modal => "modal",
            AdType::SponsoredSearch => "sponsored-search",
            AdType::Mail => "mail",
            AdType::Mobile => "mobile",
        }
    }

    /// Parses the JSON name ([`AdType::as_str`]); `None` for an unknown name.
    pub fn parse(s: &str) -> Option<AdType> {
        AdType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// YSB's `event_type`; only views pass the job's filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `view`: counted by the job.
    View,
    /// `click`: filtered out.
    Click,
    /// `purchase`: filtered out.
    Purchase,
}

impl EventType {
    /// Every event type, in the order the generator draws from.
    pub const ALL: [EventType; 3] = [EventType::View, EventType::Click, EventType::Purchase];

    /// The name YSB writes in the JSON `event_type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::View => "view",
            EventType::Click => "click",
            EventType::Purchase => "purchase",
        }
    }

    /// Parses the JSON name ([`EventType::as_str`]); `None` for an unknown name.
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One ad event. Ids are UUIDs held as `u128` and written in the usual 8-4-4-4-12 hex form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdEvent {
    /// The user who saw the ad.
    pub user_id: u128,
    /// The page the ad was on.
    pub page_id: u128,
    /// The ad; its campaign comes from the [`crate::CampaignMap`].
    pub ad_id: u128,
    /// The kind of ad.
    pub ad_type: AdType,
    /// What the user did; only views are counted.
    pub event_type: EventType,
    /// Milliseconds since the epoch.
    pub event_time: i64,
    /// The user's address (YSB writes a fixed one).
    pub ip_address: Ipv4Addr,
}

/// The record encodings the benchmark runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// YSB's JSON, about 260 bytes.
    Json,
    /// [`AdEvent::encode_binary`]'s 62-byte fixed layout.
    Binary,
}

impl AdEvent {
    /// Appends the event as YSB's generator writes it.
    pub fn encode_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"user_id\": \"");
        push_uuid(out, self.user_id);
        out.extend_from_slice(b"\", \"page_id\": \"");
        push_uuid(out, self.page_id);
        out.extend_from_slice(b"\", \"ad_id\": \"");
        push_uuid(out, self.ad_id);
        out.extend_from_slice(b"\", \"ad_type\": \"");
        out.extend_from_slice(self.ad_type.as_str().as_bytes());
        out.extend_from_slice(b"\", \"event_type\": \"");
        out.extend_from_slice(self.event_type.as_str().as_bytes());
        out.extend_from_slice(b"\", \"event_time\": \"");
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{}", self.event_time);
        out.extend_from_slice(b"\", \"ip_address\": \"");
        let _ = write!(out, "{}", self.ip_address);
        out.extend_from_slice(b"\"}");
    }

    /// Appends the fixed binary layout: user, page and ad ids (16 bytes each, big-endian),
    /// ad type and event type (1 byte each), event time (8 bytes, little-endian), IPv4 (4).
    pub fn encode_binary(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.user_id.to_be_bytes());
        out.extend_from_slice(&self.page_id.to_be_bytes());
        out.extend_from_slice(&self.ad_id.to_be_bytes());
        out.push(
            AdType::ALL
                .iter()
                .position(|t| *t == self.ad_type)
                .unwrap_or(0) as u8,
        );
        out.push(
            EventType::ALL
                .iter()
                .position(|t| *t == self.event_type)
                .unwrap_or(0) as u8,
        );
        out.extend_from_slice(&self.event_time.to_le_bytes());
        out.extend_from_slice(&self.ip_address.octets());
    }

    /// Appends the event in `encoding`.
    pub fn encode(&self, encoding: Encoding, out: &mut Vec<u8>) {
        match encoding {
            Encoding::Json => self.encode_json(out),
            Encoding::Binary => self.encode_binary(out),
        }
    }

    /// Decodes [`AdEvent::encode_binary`]'s layout.
    pub fn decode_binary(b: &[u8]) -> Result<AdEvent, YsbError> {
        if b.len() != BINARY_LEN {
            return Err(YsbError::Malformed(format!(
                "binary event of {} bytes, expected {BINARY_LEN}",
                b.len()
            )));
        }
        let u128_at = |i: usize| {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[i..i + 16]);
            u128::from_be_bytes(a)
        };
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[50..58]);
        Ok(AdEvent {
            user_id: u128_at(0),
            page_id: u128_at(16),
            ad_id: u128_at(32),
            ad_type: *AdType::ALL
                .get(usize::from(b[48]))
                .ok_or_else(|| YsbError::Malformed(format!("ad type {}", b[48])))?,
            event_type: *EventType::ALL
                .get(usize::from(b[49]))
                .ok_or_else(|| YsbError::Malformed(format!("event type {}", b[49])))?,
            event_time: i64::from_le_bytes(t),
            ip_address: Ipv4Addr::new(b[58], b[59], b[60], b[61]),
        })
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `id` as a lowercase 8-4-4-4-12 UUID.
pub fn push_uuid(out: &mut Vec<u8>, id: u128) {
    let bytes = id.to_be_bytes();
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[usize::from(byte >> 4)]);
        out.push(HEX[usize::from(byte & 0xf)]);
    }
}

/// `id` as a UUID string.
pub fn uuid_string(id: u128) -> String {
    let mut out = Vec::with_capacity(36);
    push_uuid(&mut out, id);
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses an 8-4-4-4-12 hex UUID (either case).
pub fn parse_uuid(s: &[u8]) -> Option<u128> {
    if s.len() != 36 {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &c) in s.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | u128::from(d);
    }
    Some(v)
}

/// Parses a decimal integer (optional leading `-`), rejecting anything else and overflow.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(if neg { -v } else { v })
}
