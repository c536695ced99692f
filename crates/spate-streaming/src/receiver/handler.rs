//! Block handlers: where a pushed block goes (Spark's `ReceivedBlockHandler`).
//!
//! - [`InMemoryBlockHandler`] keeps blocks in a [`BlockStore`] (the stand-in for Spark's
//!   BlockManager): fast, lost on a crash.
//! - [`WalBlockHandler`] serializes the block once, appends it to the receiver write-ahead log
//!   under `<checkpoint>/receivedData/<stream id>` with fsync, and also keeps it in memory. The
//!   push returns only when the block is durable, which is what lets a reliable receiver commit
//!   its source offsets right after without ever committing an offset of a block a crash
//!   could lose. Spark writes to the BlockManager and the WAL in
//!   parallel and waits for both; the in-memory put is instant here, so sequential is the same.
//!
//! A block's log record has the block's time as its WAL time, so the log can be cleaned by time
//! like every other write-ahead log. Its payload comes in two formats:
//!
//! ```text
//! format 1 (the first one; still written by `WalBlockHandler::open`):
//!   postcard(Block<T>)            see the checkpoint `snapshot` module for why postcard
//! versioned (a `BlockCodec` given to `WalBlockHandler::with_codec`):
//!   5  0xFF 0xFF 0xFF 0xFF 0xFF   no format-1 payload starts so: its first field is the stream
//!                                 id, a postcard u32 varint, whose fifth byte is at most 0x0F
//!   1  codec format id            `BlockCodec::format`
//!   …  the codec's encoding of the block
//! ```
//!
//! Readers accept both, so logs written before a codec was introduced stay readable.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::block::{Block, ReceivedBlockInfo, StreamBlockId};
use crate::checkpoint::RECEIVED_DATA_DIR;
use crate::error::{Result, StreamingError};
use crate::wal::{read_record_in, WalConfig, WriteAheadLog};

/// Marks a versioned block payload (see the module docs).
const VERSIONED_PREFIX: [u8; 5] = [0xFF; 5];

/// A compact encoding of blocks of `T` in the receiver write-ahead log, for records whose
/// postcard form repeats what every record of a block shares (a Kafka record's topic name).
pub trait BlockCodec<T>: Send + Sync {
    /// The format id written after the versioned prefix; never reuse one for another layout.
    fn format(&self) -> u8;

    /// Appends the encoding of `block` to `out`.
    fn encode(&self, block: &Block<T>, out: &mut Vec<u8>) -> Result<()>;

    /// Decodes what [`BlockCodec::encode`] wrote. `bytes` come from disk: malformed input is
    /// an error, never a panic or an allocation larger than the input justifies.
    fn decode(&self, bytes: &[u8]) -> std::result::Result<Block<T>, String>;
}

/// Decodes one block payload of either format (see the module docs).
pub fn decode_block_payload<T: DeserializeOwned>(
    bytes: &[u8],
    codec: Option<&dyn BlockCodec<T>>,
) -> std::result::Result<Block<T>, String> {
    let Some(rest) = bytes.strip_prefix(&VERSIONED_PREFIX) else {
        return postcard::from_bytes(bytes)
            .map_err(|e| format!("record is not a block of the expected type: {e}"));
    };
    let (&format, body) = rest
        .split_first()
        .ok_or("versioned block record without a format id")?;
    match codec {
        Some(c) if c.format() == format => c.decode(body),
        Some(c) => Err(format!(
            "block format {format} is not the reader's format {}",
            c.format()
        )),
        None => Err(format!(
            "block format {format} needs a block codec to read it"
        )),
    }
}

/// Stores pushed blocks. Called from the block generator's pusher thread.
pub trait BlockHandler<T>: Send + Sync {
    /// Stores `block`; when this returns Ok the block is as durable as the handler promises.
    fn store_block(&self, block: Arc<Block<T>>) -> Result<ReceivedBlockInfo>;

    /// Drops stored blocks older than `threshold_time_ms` (by block time).
    fn cleanup_old_blocks(&self, threshold_time_ms: i64) -> Result<()>;
}

/// In-memory block storage shared between receivers (writers) and batches (readers).
#[derive(Debug)]
pub struct BlockStore<T> {
    blocks: Mutex<HashMap<StreamBlockId, Arc<Block<T>>>>,
}

impl<T> Default for BlockStore<T> {
    fn default() -> Self {
        BlockStore {
            blocks: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> BlockStore<T> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a block.
    pub fn put(&self, block: Arc<Block<T>>) {
        self.blocks.lock().insert(block.id, block);
    }

    /// The block with id `id`, if stored.
    pub fn get(&self, id: &StreamBlockId) -> Option<Arc<Block<T>>> {
        self.blocks.lock().get(id).cloned()
    }

    /// Removes and returns a block.
    pub fn remove(&self, id: &StreamBlockId) -> Option<Arc<Block<T>>> {
        self.blocks.lock().remove(id)
    }

    /// Removes every block whose time is before `threshold_time_ms`; returns how many.
    pub fn remove_older_than(&self, threshold_time_ms: i64) -> usize {
        let mut blocks = self.blocks.lock();
        let before = blocks.len();
        blocks.retain(|id, _| id.unique_id >= threshold_time_ms);
        before - blocks.len()
    }

    /// Ids of all stored blocks, ascending.
    pub fn block_ids(&self) -> Vec<StreamBlockId> {
        let mut ids: Vec<StreamBlockId> = self.blocks.lock().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Number of stored blocks.
    pub fn len(&self) -> usize {
        self.blocks.lock().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps blocks in memory only (Spark's `BlockManagerBasedBlockHandler`).
#[derive(Debug)]
pub struct InMemoryBlockHandler<T> {
    store: Arc<BlockStore<T>>,
}

impl<T> InMemoryBlockHandler<T> {
    /// A handler putting blocks into `store`.
    pub fn new(store: Arc<BlockStore<T>>) -> Self {
        InMemoryBlockHandler { store }
    }
}

impl<T: Send + Sync> BlockHandler<T> for InMemoryBlockHandler<T> {
    fn store_block(&self, block: Arc<Block<T>>) -> Result<ReceivedBlockInfo> {
        let info = ReceivedBlockInfo {
            block_id: block.id,
            num_records: block.items.len() as u64,
            wal_handle: None,
        };
        self.store.put(block);
        Ok(info)
    }

    fn cleanup_old_blocks(&self, threshold_time_ms: i64) -> Result<()> {
        self.store.remove_older_than(threshold_time_ms);
        Ok(())
    }
}

/// Directory of the receiver write-ahead log of `stream_id` under `checkpoint_dir`.
pub fn received_data_dir(checkpoint_dir: &Path, stream_id: u32) -> PathBuf {
    checkpoint_dir
        .join(RECEIVED_DATA_DIR)
        .join(stream_id.to_string())
}

/// Makes each block durable in the receiver write-ahead log before the push returns (Spark's
/// `WriteAheadLogBasedBlockHandler`), and keeps it in memory for the batch that reads it.
#[derive(Debug)]
pub struct WalBlockHandler<T> {
    stream_id: u32,
    checkpoint_dir: PathBuf,
    store: Arc<BlockStore<T>>,
    wal: WriteAheadLog,
    codec: Option<Arc<dyn BlockCodec<T>>>,
    _items: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for dyn BlockCodec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockCodec(format {})", self.format())
    }
}

impl<T: Serialize + DeserializeOwned> WalBlockHandler<T> {
    /// Opens the log of `stream_id` under `<checkpoint_dir>/receivedData/<stream_id>`. Use
    /// [`WalConfig::default`] (fsync every block) unless you accept losing blocks on a crash.
    pub fn open(
        checkpoint_dir: &Path,
        stream_id: u32,
        store: Arc<BlockStore<T>>,
        config: WalConfig,
    ) -> Result<Self> {
        let wal = WriteAheadLog::open(received_data_dir(checkpoint_dir, stream_id), config)?;
        Ok(WalBlockHandler {
            stream_id,
            checkpoint_dir: checkpoint_dir.to_path_buf(),
            store,
            wal,
            codec: None,
            _items: PhantomData,
        })
    }

    /// [`WalBlockHandler::open`] writing blocks with `codec` (the versioned format); blocks in
    /// the first format already in the log stay readable.
    pub fn with_codec(
        checkpoint_dir: &Path,
        stream_id: u32,
        store: Arc<BlockStore<T>>,
        config: WalConfig,
        codec: Arc<dyn BlockCodec<T>>,
    ) -> Result<Self> {
        let mut handler = Self::open(checkpoint_dir, stream_id, store, config)?;
        handler.codec = Some(codec);
        Ok(handler)
    }

    fn codec(&self) -> Option<&dyn BlockCodec<T>> {
        self.codec.as_deref()
    }

    /// The input stream this handler stores blocks for.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// Reads a block back from this handler's log (after a restart, when memory is empty).
    pub fn read_block(&self, info: &ReceivedBlockInfo) -> Result<Block<T>> {
        read_block_from_wal_with(&self.checkpoint_dir, info, self.codec())
    }

    /// Every block in this handler's log, in log order.
    pub fn read_all_blocks(&self) -> Result<Vec<Block<T>>> {
        self.wal
            .read_all()?
            .iter()
            .map(|r| decode_block(self.wal.dir(), r.handle.offset, &r.payload, self.codec()))
            .collect()
    }

    /// Encodes a block for the log in this handler's format into `out` (cleared first).
    fn encode_into(&self, block: &Block<T>, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        let Some(codec) = self.codec() else {
            return postcard::to_io(block, &mut *out).map(|_| ()).map_err(|e| {
                StreamingError::BlockStore {
                    block_id: block.id.to_string(),
                    reason: format!("cannot serialize block: {e}"),
                }
            });
        };
        out.extend_from_slice(&VERSIONED_PREFIX);
        out.push(codec.format());
        codec.encode(block, out)
    }
}

thread_local! {
    /// Each receiver thread's buffer for encoding its blocks, reused block after block. A
    /// fresh buffer per block — megabytes, freed right after the append — is what glibc's
    /// allocator answers by raising its mmap threshold and keeping such buffers in its heap,
    /// where they stayed resident (a 5M-record catch-up with the log on peaked 45 MiB higher).
    static ENCODE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A reused encode buffer larger than this is given back after the append, so one huge block
/// does not pin its size for the life of the thread.
const MAX_RETAINED_ENCODE_BUFFER: usize = 16 << 20;

fn decode_block<T: DeserializeOwned>(
    dir: &Path,
    offset: u64,
    bytes: &[u8],
    codec: Option<&dyn BlockCodec<T>>,
) -> Result<Block<T>> {
    decode_block_payload(bytes, codec).map_err(|reason| StreamingError::WalCorrupt {
        path: dir.to_path_buf(),
        offset,
        reason,
    })
}

/// Reads the block described by `info` from the receiver write-ahead log under
/// `checkpoint_dir`, without opening the log: this is how a batch re-reads a block whose memory
/// copy was lost (Spark's `WriteAheadLogBackedBlockRDD`).
pub fn read_block_from_wal<T: DeserializeOwned>(
    checkpoint_dir: &Path,
    info: &ReceivedBlockInfo,
) -> Result<Block<T>> {
    read_block_from_wal_with(checkpoint_dir, info, None)
}

/// [`read_block_from_wal`] also reading blocks written with `codec`.
pub fn read_block_from_wal_with<T: DeserializeOwned>(
    checkpoint_dir: &Path,
    info: &ReceivedBlockInfo,
    codec: Option<&dyn BlockCodec<T>>,
) -> Result<Block<T>> {
    let dir = received_data_dir(checkpoint_dir, info.stream_id());
    let handle = info.wal_handle.ok_or_else(|| StreamingError::BlockStore {
        block_id: info.block_id.to_string(),
        reason: "block was not stored in a write-ahead log".into(),
    })?;
    let (_, bytes) = read_record_in(&dir, &handle)?;
    let block: Block<T> = decode_block(&dir, handle.offset, &bytes, codec)?;
    if block.id != info.block_id {
        return Err(StreamingError::WalCorrupt {
            path: dir,
            offset: handle.offset,
            reason: format!("expected block {} but found {}", info.block_id, block.id),
        });
    }
    Ok(block)
}

impl<T> BlockHandler<T> for WalBlockHandler<T>
where
    T: Serialize + DeserializeOwned + Send + Sync,
{
    fn store_block(&self, block: Arc<Block<T>>) -> Result<ReceivedBlockInfo> {
        let handle = ENCODE_BUFFER.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            self.encode_into(&block, &mut buffer)?;
            let handle = self.wal.append(block.id.unique_id, &buffer);
            if buffer.capacity() > MAX_RETAINED_ENCODE_BUFFER {
                *buffer = Vec::new();
            }
            handle
        })?;
        let info = ReceivedBlockInfo {
            block_id: block.id,
            num_records: block.items.len() as u64,
            wal_handle: Some(handle),
        };
        self.store.put(block);
        Ok(info)
    }

    fn cleanup_old_blocks(&self, threshold_time_ms: i64) -> Result<()> {
        self.store.remove_older_than(threshold_time_ms);
        self.wal.clean(threshold_time_ms)?;
        Ok(())
    }
}
