//! Failing a task from inside a partition's iterator.
//!
//! A [`PartitionIter`](super::PartitionIter) yields plain elements, so an input that streams its
//! partition (the Kafka direct stream reads records as the task consumes them) has no `Result`
//! to return when the read fails half-way (a poll timeout, offsets deleted by retention). Spark
//! throws from the iterator; [`fail_task`] does the same: it unwinds out of whatever is
//! consuming the iterator (an operator chain, the user's `foreach_partition` closure, which must
//! not go on to write a truncated partition) with the typed error as payload. The worker pool
//! turns that payload back into the error (not a panic message), so the batch fails with it.
//! The unwind starts with `resume_unwind`, which skips the panic hook: nothing is printed.

use crate::error::StreamingError;

/// The unwind payload [`fail_task`] raises.
#[derive(Debug)]
pub(crate) struct TaskFailure(pub(crate) StreamingError);

/// Ends the current task with `error` (see the module docs). Call it only from code that runs
/// inside a task, i.e. while an action of a [`Batch`](super::Batch) consumes the partition.
pub fn fail_task(error: StreamingError) -> ! {
    std::panic::resume_unwind(Box::new(TaskFailure(error)))
}

/// The error a task failed with, if the unwind `payload` came from [`fail_task`].
pub(crate) fn task_failure(
    payload: Box<dyn std::any::Any + Send>,
) -> Result<StreamingError, Box<dyn std::any::Any + Send>> {
    payload.downcast::<TaskFailure>().map(|f| f.0)
}
