//! ReceiverPlan: JSON round trip through the checkpoint, and reading blocks from memory or the
//! receiver write-ahead log.

use std::sync::Arc;

use spate_streaming::checkpoint::{BatchPlan, Checkpoint};
use spate_streaming::receiver::{
    Block, BlockHandler, BlockStore, InMemoryBlockHandler, ReceiverPlan, StreamBlockId,
    WalBlockHandler,
};
use spate_streaming::wal::WalConfig;
use spate_streaming::StreamingError;

fn block(t: i64, items: Vec<String>) -> Arc<Block<String>> {
    Arc::new(Block::new(
        StreamBlockId {
            stream_id: 2,
            unique_id: t,
        },
        items,
    ))
}

#[test]
fn plan_round_trips_through_the_checkpoint_and_reads_blocks_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(BlockStore::new());
    let handler =
        WalBlockHandler::open(dir.path(), 2, Arc::clone(&store), WalConfig::default()).unwrap();
    let infos: Vec<_> = (0..3)
        .map(|i| {
            handler
                .store_block(block(100 + i, vec![format!("a{i}"), format!("b{i}")]))
                .unwrap()
        })
        .collect();
    let plan = ReceiverPlan::new(infos);
    assert_eq!(plan.num_records(), 6);
    let cp = Checkpoint::open(dir.path()).unwrap();
    cp.write_plan(&BatchPlan::new(1000).with_input("socket-2", plan.to_json().unwrap()))
        .unwrap();

    // From memory while the receiver is alive.
    let blocks = plan.read_blocks(&store, Some(dir.path())).unwrap();
    assert_eq!(blocks[1].items, vec!["a1".to_string(), "b1".to_string()]);

    // After a "restart": plan from the checkpoint, blocks from the log.
    drop(handler);
    let recovered = cp.recover().unwrap();
    let value = &recovered.pending[0].inputs["socket-2"];
    let back = ReceiverPlan::from_json("socket-2", value).unwrap();
    assert_eq!(back, plan);
    let empty = BlockStore::new();
    let blocks = back.read_blocks(&empty, Some(dir.path())).unwrap();
    let items: Vec<String> = blocks.iter().flat_map(|b| b.items.clone()).collect();
    assert_eq!(items, vec!["a0", "b0", "a1", "b1", "a2", "b2"]);
}

#[test]
fn a_block_lost_without_a_log_is_a_named_error() {
    let store = Arc::new(BlockStore::new());
    let handler = InMemoryBlockHandler::new(Arc::clone(&store));
    let info = handler.store_block(block(5, vec!["x".into()])).unwrap();
    let plan = ReceiverPlan::new(vec![info]);
    assert_eq!(plan.read_blocks(&store, None).unwrap().len(), 1);
    let err = plan
        .read_blocks(&BlockStore::<String>::new(), None)
        .unwrap_err();
    assert!(
        matches!(&err, StreamingError::BlockStore { block_id, .. } if block_id == "input-2-5"),
        "{err}"
    );
}

#[test]
fn newer_or_malformed_plans_are_rejected() {
    let newer = serde_json::json!({"version": 2, "blocks": []});
    assert!(matches!(
        ReceiverPlan::from_json("r", &newer),
        Err(StreamingError::CheckpointIncompatible { .. })
    ));
    let malformed = serde_json::json!({"version": 1, "blocks": "nope"});
    let err = ReceiverPlan::from_json("r", &malformed).unwrap_err();
    assert!(
        err.to_string().contains("receiver plan of input \"r\""),
        "{err}"
    );
}
