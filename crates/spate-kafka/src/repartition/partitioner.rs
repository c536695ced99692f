//! Where a repartition record goes and what its bytes are: keys and values are encoded with
//! postcard from their serde types (the engine's encoding, as in state changelogs), and the
//! partition is Kafka's default partitioner over the key bytes — murmur2 with Kafka's seed,
//! made positive, modulo the partition count — so a record lands where a Java client (or
//! librdkafka with `partitioner=murmur2_random`) would put a record with the same key bytes.
//! The partition is computed here rather than left to the producer because librdkafka's
//! default partitioner is CRC32-based (`consistent_random`), not Kafka's.

use serde::de::DeserializeOwned;
use serde::Serialize;
use spate_streaming::StreamingError;

use crate::sink::OutputRecord;

/// Kafka's default partition for `key` among `partitions` partitions
/// (`Utils.toPositive(Utils.murmur2(key)) % numPartitions`).
pub fn kafka_partition(key: &[u8], partitions: i32) -> i32 {
    let hash = murmur2::murmur2(key, murmur2::KAFKA_SEED) & 0x7fff_ffff;
    // `partitions` is positive (checked when the topic is opened), so the result fits.
    (hash % partitions.max(1).unsigned_abs()) as i32
}

/// The repartition record of `(key, value)`: postcard bytes, partition by the key bytes.
pub(crate) fn encode<K: Serialize, V: Serialize>(
    key: &K,
    value: &V,
    partitions: i32,
) -> Result<OutputRecord, StreamingError> {
    let serialization = |e: postcard::Error| StreamingError::Serialization {
        what: "a repartition record".into(),
        reason: e.to_string(),
    };
    let key = postcard::to_allocvec(key).map_err(serialization)?;
    let value = postcard::to_allocvec(value).map_err(serialization)?;
    Ok(OutputRecord {
        partition: Some(kafka_partition(&key, partitions)),
        key: Some(key),
        value: Some(value),
    })
}

/// The `(key, value)` of a repartition record read back.
pub(crate) fn decode<K: DeserializeOwned, V: DeserializeOwned>(
    topic: &str,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<(K, V), StreamingError> {
    let decode_failed = |what: &str, reason: String| StreamingError::Serialization {
        what: format!("the {what} of a record of repartition topic {topic}"),
        reason,
    };
    let key = key.ok_or_else(|| decode_failed("key", "null key".into()))?;
    let value = value.ok_or_else(|| decode_failed("value", "null value".into()))?;
    let k = postcard::from_bytes(key).map_err(|e| decode_failed("key", e.to_string()))?;
    let v = postcard::from_bytes(value).map_err(|e| decode_failed("value", e.to_string()))?;
    Ok((k, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own murmur2 test vectors (`UtilsTest.testMurmur2`).
    #[test]
    fn murmur2_is_kafkas() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2::murmur2(key, murmur2::KAFKA_SEED) as i32, expected);
        }
    }

    #[test]
    fn partition_is_positive_hash_modulo_count() {
        // -973932308 & 0x7fffffff = 1173551340; 1173551340 % 6 = 0, % 7 = 3.
        assert_eq!(kafka_partition(b"21", 6), 0);
        assert_eq!(kafka_partition(b"21", 7), 3);
        for p in 1..20 {
            assert!((0..p).contains(&kafka_partition(b"foobar", p)));
        }
    }

    #[test]
    fn records_round_trip_and_null_keys_are_refused() {
        let r = encode(&"alpha".to_owned(), &3_i64, 4).unwrap();
        let (k, v): (String, i64) = decode("t", r.key.as_deref(), r.value.as_deref()).unwrap();
        assert_eq!((k.as_str(), v), ("alpha", 3));
        assert_eq!(
            r.partition,
            Some(kafka_partition(r.key.as_deref().unwrap(), 4))
        );
        assert!(decode::<String, i64>("t", None, r.value.as_deref()).is_err());
    }
}
