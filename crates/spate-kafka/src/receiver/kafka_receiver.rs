//! [`KafkaReceiver`]: the [`Receiver`] that consumes Kafka with a consumer group (Spark's
//! `KafkaReceiver` and `ReliableKafkaReceiver`).
//!
//! One run starts `Σ num_threads` consumer threads (one consumer — one group member — per
//! thread, each subscribed to its topic, as Kafka 0.8's `createMessageStreams(topic → n)` did).
//! Kafka assigns the partitions; records are handed to the block generator one at a time through
//! [`ReceiverContext::store`], under the receiver's rate limit.
//!
//! - **Unreliable** (write-ahead log off): the consumer auto-commits on its own timer, whatever
//!   the block generator has done with the records.
//! - **Reliable** (write-ahead log on): auto-commit is off; the `ReliableListener` notes each
//!   record's offset and commits a block's offsets only after the block is in the write-ahead log
//!   (fsynced) and reported to the tracker. Before partitions are revoked, and before a consumer
//!   leaves, it waits for what it handed over to be stored and commits it.
//!
//! If one consumer thread fails, the whole run is restarted (all threads stop, the supervisor
//! waits its backoff, and a new run creates new consumers that resume from the committed offsets).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use spate_streaming::receiver::{
    Block, BlockGeneratorListener, ReceivedBlockInfo, Receiver, ReceiverContext, ReceiverError,
    StreamBlockId,
};
use spate_streaming::StreamingError;

use super::config::KafkaReceiverConfig;
use super::consumer::{ConsumerGroupState, ReceiverConsumer, ReceiverConsumerContext};
use super::offsets::OffsetBook;
use crate::error::SpateKafkaError;
use crate::record::{ConsumerRecord, RecordArena};

/// The Kafka consumer-group receiver. See the module docs.
#[derive(Debug)]
pub struct KafkaReceiver {
    config: Arc<KafkaReceiverConfig>,
    state: Arc<ConsumerGroupState>,
    book: Option<Arc<OffsetBook>>,
}

impl KafkaReceiver {
    /// A receiver for `config`; `book` is present in reliable mode.
    pub(crate) fn new(
        config: Arc<KafkaReceiverConfig>,
        state: Arc<ConsumerGroupState>,
        book: Option<Arc<OffsetBook>>,
    ) -> Self {
        KafkaReceiver {
            config,
            state,
            book,
        }
    }

    /// Thread `index` of a run: consume `topic` until stopped.
    fn consume(
        &self,
        index: usize,
        topic: &str,
        ctx: &ReceiverContext<ConsumerRecord>,
    ) -> Result<(), SpateKafkaError> {
        let group = self.state.group().to_owned();
        let mut client_config = self.config.consumer_config();
        if let Some(instance) = client_config.get("group.instance.id").map(str::to_owned) {
            // Static membership: every consumer thread is its own member, so each needs its own
            // instance id; a restarted receiver reclaims its members' partitions without waiting
            // for the old sessions to time out.
            let _ = client_config.set("group.instance.id", format!("{instance}-{index}"));
        }
        let consumer: ReceiverConsumer = client_config
            .create_with_context(ReceiverConsumerContext::new(index, Arc::clone(&self.state)))
            .map_err(|source| SpateKafkaError::CreateConsumer {
                group: group.clone(),
                source: Box::new(source),
            })?;
        let consumer = Arc::new(consumer);
        consumer
            .subscribe(&[topic])
            .map_err(|source| SpateKafkaError::Subscribe {
                group: group.clone(),
                topics: vec![topic.to_owned()],
                source: Box::new(source),
            })?;
        self.state.register(index, Arc::clone(&consumer));
        let result = self.poll_loop(&consumer, ctx);
        if self.book.is_some() {
            // Leaving the group: commit what this consumer's partitions have stored, so the
            // next owner (or our own next run) does not re-read it.
            let owned = self.state.assigned_to(index);
            self.state.flush_and_commit(&consumer, &owned);
        }
        self.state.unregister(index);
        result
    }

    fn poll_loop(
        &self,
        consumer: &ReceiverConsumer,
        ctx: &ReceiverContext<ConsumerRecord>,
    ) -> Result<(), SpateKafkaError> {
        let group = self.state.group();
        // The last topic name seen, shared by the records that follow from the same topic.
        let mut topic: std::sync::Arc<str> = std::sync::Arc::from("");
        // This thread's chunks for keys and values: a record costs no allocation of its own,
        // and a chunk is freed (or reused) once the blocks holding its records are.
        let mut arena = RecordArena::new();
        while !ctx.is_stopped() {
            // A poll that waits makes librdkafka read the clock for its deadline; one that does
            // not wait does not. While records are queued (catching up) the first poll finds
            // one, so the clock is read only when the queue runs dry.
            let polled = match consumer.poll(Duration::ZERO) {
                None => consumer.poll(self.config.poll_timeout()),
                ready => ready,
            };
            match polled {
                None => {}
                Some(Ok(message)) => {
                    let record = ConsumerRecord::from_message(&message, &topic, &mut arena);
                    if !std::sync::Arc::ptr_eq(&record.topic, &topic) {
                        topic = std::sync::Arc::clone(&record.topic);
                    }
                    drop(message);
                    if let Err(e) = ctx.store(record) {
                        if ctx.is_stopped() {
                            break;
                        }
                        return Err(e.into());
                    }
                }
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                    return Err(SpateKafkaError::Poll {
                        group: group.to_owned(),
                        source: Box::new(e),
                    });
                }
                Some(Err(e)) => {
                    // librdkafka retries transport and leader errors itself; report and go on.
                    ctx.report_error(format!("consumer of group {group}: {e}"));
                }
            }
        }
        Ok(())
    }
}

impl Receiver<ConsumerRecord> for KafkaReceiver {
    fn run(&mut self, ctx: &ReceiverContext<ConsumerRecord>) -> Result<(), ReceiverError> {
        if let Some(book) = &self.book {
            book.reset();
        }
        let threads: Vec<(usize, String)> = self
            .config
            .topics()
            .iter()
            .flat_map(|(topic, n)| std::iter::repeat_n(topic.clone(), *n))
            .enumerate()
            .collect();
        let this = &*self;
        let failure = std::thread::scope(|scope| {
            let mut handles = Vec::new();
            for (index, topic) in &threads {
                let spawned = std::thread::Builder::new()
                    .name(format!("kafka-receiver-{}-{index}", ctx.stream_id()))
                    .spawn_scoped(scope, move || {
                        let result = this.consume(*index, topic, ctx);
                        if let Err(e) = &result {
                            // Stop the sibling threads: the run restarts as a whole.
                            ctx.restart(format!("consumer thread {index} failed: {e}"));
                        }
                        result
                    });
                match spawned {
                    Ok(h) => handles.push(h),
                    Err(e) => {
                        ctx.restart(format!("cannot start consumer thread: {e}"));
                        return Some(SpateKafkaError::from(StreamingError::ReceiverStopped {
                            stream_id: ctx.stream_id(),
                            reason: format!("cannot start consumer thread: {e}"),
                        }));
                    }
                }
            }
            let mut failure = None;
            for h in handles {
                match h.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        failure.get_or_insert(e);
                    }
                    Err(_) => {
                        failure.get_or_insert(SpateKafkaError::from(
                            StreamingError::ReceiverStopped {
                                stream_id: ctx.stream_id(),
                                reason: "consumer thread panicked".into(),
                            },
                        ));
                    }
                }
            }
            failure
        });
        match failure {
            Some(e) => Err(Box::new(e)),
            None => Ok(()),
        }
    }
}

/// The reliable receiver's block-generator listener: offset bookkeeping and commits after the
/// block is durable (Spark's `GeneratedBlockHandler`).
#[derive(Debug)]
pub(crate) struct ReliableListener {
    pub(crate) book: Arc<OffsetBook>,
    pub(crate) state: Arc<ConsumerGroupState>,
}

impl BlockGeneratorListener<ConsumerRecord> for ReliableListener {
    fn on_add_data(&self, item: &ConsumerRecord, _metadata: Option<&()>) {
        self.book
            .record_of_topic_added(&item.topic, item.partition, item.offset);
    }

    fn on_generate_block(&self, block_id: StreamBlockId) {
        self.book.block_generated(block_id);
    }

    fn on_push_block(&self, block: &Block<ConsumerRecord>, _info: &ReceivedBlockInfo) {
        if let Some(offsets) = self.book.block_pushed(block.id) {
            self.state.commit_durable(&offsets);
        }
    }

    fn on_error(&self, message: &str, error: &StreamingError) {
        tracing::error!(%message, %error, "block not stored; offsets will not be committed until the receiver restarts");
        self.book.block_failed();
    }
}
