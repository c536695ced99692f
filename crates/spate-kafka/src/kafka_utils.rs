//! [`KafkaUtils`]: the crate's entry points in one place, named as in Spark's `KafkaUtils` —
//! the direct stream, batch reads of explicit ranges, and the receiver stream. Each method is a
//! thin door into the module that owns the approach ([`crate::direct`], [`crate::receiver`]).

use spate_streaming::StreamingContext;

use crate::direct::rdd::{read_rdd, KafkaRdd};
use crate::direct::{
    ConsumerStrategy, DirectKafkaStream, DirectStreamConfig, KafkaParams, KafkaRangeReader,
    OffsetRange,
};
use crate::error::Result;
use crate::receiver::{KafkaReceiverConfig, KafkaReceiverStream};

/// Entry points, named as in Spark.
#[derive(Debug)]
pub struct KafkaUtils;

impl KafkaUtils {
    /// Spark's `KafkaUtils.createDirectStream(ssc, PreferConsistent, strategy)` with default
    /// stream settings.
    pub fn create_direct_stream(
        ctx: &StreamingContext,
        strategy: ConsumerStrategy,
    ) -> Result<DirectKafkaStream> {
        Self::create_direct_stream_with(ctx, strategy, DirectStreamConfig::default())
    }

    /// A direct stream with explicit rate limits, data-loss policy and timeouts.
    pub fn create_direct_stream_with(
        ctx: &StreamingContext,
        strategy: ConsumerStrategy,
        config: DirectStreamConfig,
    ) -> Result<DirectKafkaStream> {
        crate::direct::stream::create_direct_stream(ctx, strategy, config)
    }

    /// Spark's `KafkaUtils.createRDD`: reads `ranges` with default stream settings (fail on
    /// data loss, 120 s poll timeout). One partition per range, in the ranges' order.
    pub fn create_rdd(params: &KafkaParams, ranges: &[OffsetRange]) -> Result<KafkaRdd> {
        Self::create_rdd_with(params, ranges, &DirectStreamConfig::default())
    }

    /// Reads `ranges` with explicit settings.
    pub fn create_rdd_with(
        params: &KafkaParams,
        ranges: &[OffsetRange],
        config: &DirectStreamConfig,
    ) -> Result<KafkaRdd> {
        let reader = KafkaRangeReader::new(params.clone(), config.clone())?;
        Self::create_rdd_from(&reader, ranges)
    }

    /// Reads `ranges` with an existing reader, reusing its cached consumers.
    pub fn create_rdd_from(reader: &KafkaRangeReader, ranges: &[OffsetRange]) -> Result<KafkaRdd> {
        read_rdd(reader, ranges)
    }

    /// Spark's `KafkaUtils.createStream(ssc, kafkaParams, topics)`: a receiver consuming
    /// `topics` (topic → consumer threads) with the consumer group `group.id` of `kafka_params`.
    /// Receiver settings (`spate.streaming.receiver.write.ahead.log.enable`, block interval,
    /// max rate, backpressure) may be given in `kafka_params`; see [`KafkaReceiverConfig`]. For
    /// parallel receiving, create several streams with the same `group.id` and `union` them.
    pub fn create_stream<K, V, T>(
        ctx: &StreamingContext,
        kafka_params: impl IntoIterator<Item = (K, V)>,
        topics: impl IntoIterator<Item = (T, usize)>,
    ) -> Result<KafkaReceiverStream>
    where
        K: Into<String>,
        V: Into<String>,
        T: Into<String>,
    {
        let config = KafkaReceiverConfig::new(kafka_params, topics)?;
        Self::create_stream_with(ctx, config)
    }

    /// [`KafkaUtils::create_stream`] with a prepared [`KafkaReceiverConfig`].
    pub fn create_stream_with(
        ctx: &StreamingContext,
        config: KafkaReceiverConfig,
    ) -> Result<KafkaReceiverStream> {
        crate::receiver::input::create_stream(ctx, config)
    }
}
