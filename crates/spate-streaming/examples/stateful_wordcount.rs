//! Running word counts over new files in a directory, recoverable from a checkpoint — the shape
//! of a Kafka word count (state, checkpoint, recovery) with a text-file input instead.
//!
//! ```text
//! cargo run -p spate-streaming --example stateful_wordcount -- /tmp/in /tmp/ckpt
//! echo "a b a" > /tmp/in/.1 && mv /tmp/in/.1 /tmp/in/1.txt     # in another shell
//! ```
//! Kill it (even with SIGKILL) and start it again: counts continue from where they were, and
//! no file is counted twice. Stops by itself after 30 s.

use std::time::Duration;

use spate_streaming::{Config, StreamingContext, StreamingError};

fn main() -> Result<(), StreamingError> {
    let mut args = std::env::args().skip(1);
    let input = args.next().unwrap_or_else(|| "in".into());
    let checkpoint = args.next().unwrap_or_else(|| "ckpt/wordcount".into());
    std::fs::create_dir_all(&input).map_err(|e| StreamingError::io(&input, e))?;

    let ctx = StreamingContext::get_or_create(&checkpoint, || {
        let ctx = StreamingContext::new(
            Config::new("wordcount").batch_interval(Duration::from_millis(500)),
        )?;
        ctx.text_file_stream(&input)
            .flat_map(|line: String| {
                line.split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .map(|w| (w, 1u64))
            .update_state_by_key(|new: &[u64], total: Option<u64>| {
                Some(total.unwrap_or(0) + new.iter().sum::<u64>())
            })
            .foreach_batch(|batch, time| {
                let mut counts = batch.collect()?;
                counts.sort();
                println!("{} ms: {counts:?}", time.as_millis());
                Ok::<_, StreamingError>(())
            });
        Ok(ctx)
    })?;
    ctx.start()?;
    if !ctx.await_termination_or_timeout(Duration::from_secs(30))? {
        ctx.stop(true)?;
    }
    Ok(())
}
