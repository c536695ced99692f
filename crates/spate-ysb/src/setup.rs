//! YSB's fixed set-up — 100 campaigns of 10 ads, 100 users and 100 pages — drawn from a seed,
//! the event generator over it (uniform ads, users, pages, ad types and event types, so a third
//! are views, as `core.clj`), and the [`CampaignMap`] that stands in for YSB's Redis
//! `ad_id -> campaign_id` lookup.

use std::net::Ipv4Addr;

use rustc_hash::FxHashMap;

use crate::events::{uuid_string, AdEvent, AdType, EventType, ADS_PER_CAMPAIGN, CAMPAIGNS, USERS};

/// A small, fast, seeded generator (SplitMix64): the same seed gives the same campaigns, ads
/// and events on every machine, so runs and the checker agree.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 uniformly distributed bits.
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
    /// The campaign ids.
    pub campaigns: Vec<u128>,
    /// Ad `i` belongs to campaign `i / ADS_PER_CAMPAIGN`.
    pub ads: Vec<u128>,
    /// The user ids events are drawn from.
    pub users: Vec<u128>,
    /// The page ids events are drawn from.
    pub pages: Vec<u128>,
}

impl YsbSetup {
    /// Draws the campaigns, ads, users and pages from `seed` (same seed, same ids).
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

    /// A deterministic stream of events over this set-up (the caller gives each its time).
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

    /// How many campaigns the map holds.
    pub fn num_campaigns(&self) -> usize {
        self.campaigns.len()
    }

    /// How many ads the map holds.
    pub fn num_ads(&self) -> usize {
        self.by_ad.len()
    }
}

/// The set-up and one event every YSB unit test starts from (seeded, so tests are stable).
#[cfg(test)]
pub(crate) fn sample_event() -> (YsbSetup, crate::events::AdEvent) {
    let setup = YsbSetup::new(7);
    let e = setup.events(1).next_event(1_449_000_000_123);
    (setup, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{parse_i64, parse_uuid};

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
}
