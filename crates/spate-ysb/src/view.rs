//! The job's view of a record: decode either encoding into the owned [`AdEvent`], and
//! [`view_of`], YSB's parse → filter → project → join step on one record, which reads JSON
//! through the borrowing parser ([`AdEventRef`]) and joins through the [`CampaignMap`].

use crate::error::YsbError;
use crate::events::{AdEvent, Encoding, EventType};
use crate::json::AdEventRef;
use crate::setup::CampaignMap;

impl AdEvent {
    /// Decodes a record in either encoding into the owned model.
    pub fn decode(encoding: Encoding, b: &[u8]) -> Result<AdEvent, YsbError> {
        match encoding {
            Encoding::Binary => AdEvent::decode_binary(b),
            Encoding::Json => AdEventRef::parse_json(b)?.to_owned_event(),
        }
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
    use crate::events::{window_start, BINARY_LEN};
    use crate::setup::sample_event as sample;
    use crate::setup::YsbSetup;

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
    fn binary_round_trips() {
        let (_, e) = sample();
        let mut buf = Vec::new();
        e.encode_binary(&mut buf);
        assert_eq!(buf.len(), BINARY_LEN);
        assert_eq!(AdEvent::decode(Encoding::Binary, &buf).unwrap(), e);
        assert!(AdEvent::decode_binary(&buf[1..]).is_err());
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
