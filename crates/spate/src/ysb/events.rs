//! The Yahoo Streaming Benchmark's ad events: the model, the two wire encodings (YSB's ~260-byte
//! JSON and a 62-byte fixed binary layout that takes parsing out of the measurement), a fast
//! zero-copy JSON scanner, the seeded generator of campaigns, ads and events, and the
//! [`CampaignMap`] that stands in for YSB's Redis `ad_id -> campaign_id` lookup.
//!
//! The JSON is exactly the shape `core.clj` writes (field order, `": "` separators, the event
//! time as a string). Parsing does not assume that order: [`AdEventRef::parse_json`] scans any
//! flat object of string or number fields, borrowing the values from the input, and rejects
//! escapes (never present in YSB's UUIDs, words and digits) rather than allocating for them —
//! serde_json with borrowed `&str` fields measured about 2× slower on these records.

use std::io::Write as _;
use std::net::Ipv4Addr;

use rustc_hash::FxHashMap;

use super::YsbError;

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
    Banner,
    Modal,
    SponsoredSearch,
    Mail,
    Mobile,
}

impl AdType {
    pub const ALL: [AdType; 5] = [
        AdType::Banner,
        AdType::Modal,
        AdType::SponsoredSearch,
        AdType::Mail,
        AdType::Mobile,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AdType::Banner => "banner",
            AdType::Modal => "modal",
            AdType::SponsoredSearch => "sponsored-search",
            AdType::Mail => "mail",
            AdType::Mobile => "mobile",
        }
    }

    pub fn parse(s: &str) -> Option<AdType> {
        AdType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// YSB's `event_type`; only views pass the job's filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    View,
    Click,
    Purchase,
}

impl EventType {
    pub const ALL: [EventType; 3] = [EventType::View, EventType::Click, EventType::Purchase];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::View => "view",
            EventType::Click => "click",
            EventType::Purchase => "purchase",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One ad event. Ids are UUIDs held as `u128` and written in the usual 8-4-4-4-12 hex form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdEvent {
    pub user_id: u128,
    pub page_id: u128,
    pub ad_id: u128,
    pub ad_type: AdType,
    pub event_type: EventType,
    /// Milliseconds since the epoch.
    pub event_time: i64,
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

    /// Decodes a record in either encoding into the owned model.
    pub fn decode(encoding: Encoding, b: &[u8]) -> Result<AdEvent, YsbError> {
        match encoding {
            Encoding::Binary => AdEvent::decode_binary(b),
            Encoding::Json => AdEventRef::parse_json(b)?.to_owned_event(),
        }
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

/// A JSON ad event with its 7 fields borrowed from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdEventRef<'a> {
    pub user_id: &'a str,
    pub page_id: &'a str,
    pub ad_id: &'a str,
    pub ad_type: &'a str,
    pub event_type: &'a str,
    /// The event time as written (YSB writes it as a string of epoch milliseconds).
    pub event_time: &'a str,
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
    /// literal by literal (the speculation Mison and pikkr use: guess the layout, verify it).
    /// `None` on any difference, and the general scanner takes over.
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

/// A small, fast, seeded generator (SplitMix64): the same seed gives the same campaigns, ads
/// and events on every machine, so runs and the checker agree.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A random version-4 UUID.
    pub fn uuid(&mut self) -> u128 {
        let v = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
        (v & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is negligible for small n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// YSB's fixed set-up: 100 campaigns of 10 ads, 100 users and 100 pages, from a seed.
#[derive(Debug, Clone)]
pub struct YsbSetup {
    pub campaigns: Vec<u128>,
    /// Ad `i` belongs to campaign `i / ADS_PER_CAMPAIGN`.
    pub ads: Vec<u128>,
    pub users: Vec<u128>,
    pub pages: Vec<u128>,
}

impl YsbSetup {
    pub fn new(seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mut ids = |n: usize| (0..n).map(|_| rng.uuid()).collect::<Vec<_>>();
        let campaigns = ids(CAMPAIGNS);
        let ads = ids(CAMPAIGNS * ADS_PER_CAMPAIGN);
        let users = ids(USERS);
        let pages = ids(USERS);
        YsbSetup {
            campaigns,
            ads,
            users,
            pages,
        }
    }

    /// The ad → campaign lookup the job joins through.
    pub fn campaign_map(&self) -> CampaignMap {
        CampaignMap::new(
            self.campaigns.clone(),
            self.ads
                .iter()
                .enumerate()
                .map(|(i, &ad)| (ad, (i / ADS_PER_CAMPAIGN) as u32)),
        )
    }

    /// A deterministic stream of events over this set-up, stamped by `clock`.
    pub fn events(&self, seed: u64) -> EventGenerator<'_> {
        EventGenerator {
            setup: self,
            rng: SplitMix64::new(seed ^ 0x5953_4221),
        }
    }
}

/// Draws events uniformly over the set-up's ads, users, pages, ad types and event types (so a
/// third are views), as `core.clj` does.
#[derive(Debug, Clone)]
pub struct EventGenerator<'a> {
    setup: &'a YsbSetup,
    rng: SplitMix64,
}

impl EventGenerator<'_> {
    /// The next event, with `event_time` as given.
    pub fn next_event(&mut self, event_time: i64) -> AdEvent {
        let r = &mut self.rng;
        let s = self.setup;
        AdEvent {
            user_id: s.users[r.below(s.users.len())],
            page_id: s.pages[r.below(s.pages.len())],
            ad_id: s.ads[r.below(s.ads.len())],
            ad_type: AdType::ALL[r.below(AdType::ALL.len())],
            event_type: EventType::ALL[r.below(EventType::ALL.len())],
            event_time,
            ip_address: Ipv4Addr::new(1, 2, 3, 4),
        }
    }
}

/// `ad_id -> campaign` (YSB's Redis lookup, cached in-process as every engine does). Campaigns
/// are numbered `0..n`; [`CampaignMap::campaign_id`] gives the UUID.
#[derive(Debug, Clone, Default)]
pub struct CampaignMap {
    campaigns: Vec<u128>,
    by_ad: FxHashMap<u128, u32>,
    by_ad_text: FxHashMap<Box<[u8]>, u32>,
}

impl CampaignMap {
    /// A map over `campaigns` (by index) and `(ad_id, campaign index)` pairs.
    pub fn new(campaigns: Vec<u128>, ads: impl IntoIterator<Item = (u128, u32)>) -> Self {
        let mut by_ad = FxHashMap::default();
        let mut by_ad_text = FxHashMap::default();
        for (ad, c) in ads {
            by_ad.insert(ad, c);
            by_ad_text.insert(uuid_string(ad).into_bytes().into_boxed_slice(), c);
        }
        CampaignMap {
            campaigns,
            by_ad,
            by_ad_text,
        }
    }

    /// The campaign of an ad id.
    pub fn campaign_of(&self, ad_id: u128) -> Option<u32> {
        self.by_ad.get(&ad_id).copied()
    }

    /// The campaign of an ad id as written in the JSON (lowercase UUID), without parsing it.
    pub fn campaign_of_text(&self, ad_id: &[u8]) -> Option<u32> {
        self.by_ad_text.get(ad_id).copied()
    }

    /// The UUID of campaign `index`.
    pub fn campaign_id(&self, index: u32) -> Option<u128> {
        self.campaigns.get(index as usize).copied()
    }

    /// The index of a campaign UUID.
    pub fn campaign_index(&self, id: u128) -> Option<u32> {
        self.campaigns
            .iter()
            .position(|&c| c == id)
            .map(|i| i as u32)
    }

    pub fn num_campaigns(&self) -> usize {
        self.campaigns.len()
    }

    pub fn num_ads(&self) -> usize {
        self.by_ad.len()
    }
}

/// The job's view of a record: its campaign and event time when it is a view of a known ad,
/// `None` when it is filtered out (not a view, or an ad with no campaign, which YSB drops too).
pub fn view_of(
    encoding: Encoding,
    record: &[u8],
    campaigns: &CampaignMap,
) -> Result<Option<(u32, i64)>, YsbError> {
    match encoding {
        Encoding::Json => {
            let e = AdEventRef::parse_json(record)?;
            if e.event_type != "view" {
                return Ok(None);
            }
            let time = e.event_time_ms()?;
            Ok(campaigns
                .campaign_of_text(e.ad_id.as_bytes())
                .map(|c| (c, time)))
        }
        Encoding::Binary => {
            let e = AdEvent::decode_binary(record)?;
            if e.event_type != EventType::View {
                return Ok(None);
            }
            Ok(campaigns.campaign_of(e.ad_id).map(|c| (c, e.event_time)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (YsbSetup, AdEvent) {
        let setup = YsbSetup::new(7);
        let e = setup.events(1).next_event(1_449_000_000_123);
        (setup, e)
    }

    #[test]
    fn json_round_trips_and_is_ysb_sized() {
        let (_, e) = sample();
        let mut buf = Vec::new();
        e.encode_json(&mut buf);
        assert!(
            (240..=270).contains(&buf.len()),
            "{} bytes: {}",
            buf.len(),
            String::from_utf8_lossy(&buf)
        );
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["event_time"], "1449000000123");
        let back = AdEvent::decode(Encoding::Json, &buf).unwrap();
        assert_eq!(back, e);
    }

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
    fn binary_round_trips() {
        let (_, e) = sample();
        let mut buf = Vec::new();
        e.encode_binary(&mut buf);
        assert_eq!(buf.len(), BINARY_LEN);
        assert_eq!(AdEvent::decode(Encoding::Binary, &buf).unwrap(), e);
        assert!(AdEvent::decode_binary(&buf[1..]).is_err());
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

    #[test]
    fn uuids_and_integers_parse() {
        let id = SplitMix64::new(3).uuid();
        let s = uuid_string(id);
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4", "version 4: {s}");
        assert_eq!(parse_uuid(s.as_bytes()), Some(id));
        assert_eq!(parse_uuid(s.to_uppercase().as_bytes()), Some(id));
        assert_eq!(parse_uuid(b"not-a-uuid"), None);
        assert_eq!(parse_i64(b"-42"), Some(-42));
        assert_eq!(parse_i64(b"1x"), None);
        assert_eq!(parse_i64(b""), None);
    }

    #[test]
    fn generator_is_deterministic_and_a_third_are_views() {
        let setup = YsbSetup::new(11);
        assert_eq!(YsbSetup::new(11).ads, setup.ads, "same seed, same set-up");
        let map = setup.campaign_map();
        assert_eq!((map.num_campaigns(), map.num_ads()), (100, 1000));
        let mut g = setup.events(5);
        let n = 30_000;
        let mut views = 0;
        for i in 0..n {
            let e = g.next_event(i);
            let c = map.campaign_of(e.ad_id).unwrap();
            assert_eq!(
                setup.ads.iter().position(|&a| a == e.ad_id).unwrap() / ADS_PER_CAMPAIGN,
                c as usize
            );
            views += usize::from(e.event_type == EventType::View);
        }
        assert!((9_000..11_000).contains(&views), "{views} views of {n}");
    }

    #[test]
    fn view_of_filters_and_joins_in_both_encodings() {
        let setup = YsbSetup::new(2);
        let map = setup.campaign_map();
        let mut g = setup.events(9);
        for i in 0..200 {
            let e = g.next_event(1000 + i);
            let expected = (e.event_type == EventType::View)
                .then(|| (map.campaign_of(e.ad_id).unwrap(), e.event_time));
            for enc in [Encoding::Json, Encoding::Binary] {
                let mut buf = Vec::new();
                e.encode(enc, &mut buf);
                assert_eq!(view_of(enc, &buf, &map).unwrap(), expected);
            }
        }
        assert_eq!(window_start(19_999), 10_000);
        assert_eq!(window_start(-1), -10_000);
    }
}
