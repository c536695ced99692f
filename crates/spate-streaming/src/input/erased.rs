//! The engine's untyped view of an input: the one place where an input's typed
//! [`InputStream::Plan`] and [`InputStream::State`] meet JSON. A plan is encoded once, when it
//! is planned (the checkpoint records the JSON), and decoded once per recovered batch; in
//! between, the engine carries it as an [`ErasedPlan`] that keeps both forms, so the input's
//! `compute`, `info` and `replayed` get the typed plan without parsing anything.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use super::{InputContext, InputStream};
use crate::error::{Result, StreamingError};
use crate::listener::{BatchInfo, InputInfo};
use crate::time::Time;

/// One input's plan of one batch: the typed value for the input, and its JSON for the
/// checkpoint's offset log.
#[derive(Clone)]
pub(crate) struct ErasedPlan {
    json: serde_json::Value,
    typed: Arc<dyn Any + Send + Sync>,
}

impl ErasedPlan {
    /// The plan as the checkpoint records it.
    pub(crate) fn json(&self) -> &serde_json::Value {
        &self.json
    }

    /// The typed plan of input `input_id`; an error if the plan was made for another type
    /// (which the engine never does: plans are keyed by input id).
    pub(crate) fn typed<P: 'static>(&self, input_id: &str) -> Result<&P> {
        self.typed.downcast_ref::<P>().ok_or_else(|| {
            StreamingError::input(input_id, "the batch's plan was made by a different input")
        })
    }
}

/// The engine's untyped view of an input (planning side).
pub(crate) trait ErasedInput: Send + Sync {
    fn kind(&self) -> String;
    fn start(&self, ctx: &InputContext) -> Result<()>;
    fn stop(&self) -> Result<()>;
    /// Plans batch `time` and encodes the plan for the checkpoint.
    fn plan(&self, time: Time) -> Result<ErasedPlan>;
    /// Decodes a plan read back from the checkpoint.
    fn decode_plan(&self, recorded: &serde_json::Value) -> Result<ErasedPlan>;
    fn info(&self, time: Time, plan: &ErasedPlan) -> InputInfo;
    fn replayed(&self, time: Time, plan: &ErasedPlan) -> Result<()>;
    /// The input's state as JSON text, as state snapshots keep it.
    fn snapshot_state(&self) -> Result<Option<String>>;
    fn restore_state(&self, json: &str) -> Result<()>;
    fn batch_completed(&self, info: &BatchInfo);
    fn tasks(&self) -> Result<Option<super::InputTasks>>;
}

/// An [`InputStream`] seen through [`ErasedInput`].
pub(crate) struct Erased<T, I: InputStream<T>>(
    pub(crate) Arc<I>,
    pub(crate) PhantomData<fn() -> T>,
);

impl<T: 'static, I: InputStream<T>> Erased<T, I> {
    fn typed<'p>(&self, plan: &'p ErasedPlan) -> Result<&'p I::Plan> {
        plan.typed::<I::Plan>(self.0.kind())
    }
}

impl<T: 'static, I: InputStream<T>> ErasedInput for Erased<T, I> {
    fn kind(&self) -> String {
        self.0.kind().to_owned()
    }
    fn start(&self, ctx: &InputContext) -> Result<()> {
        self.0.start(ctx)
    }
    fn stop(&self) -> Result<()> {
        self.0.stop()
    }
    fn plan(&self, time: Time) -> Result<ErasedPlan> {
        let typed = self.0.plan(time)?;
        let json = serde_json::to_value(&typed).map_err(|e| {
            StreamingError::serialization(format!("plan of a {} input", self.0.kind()), e)
        })?;
        Ok(ErasedPlan {
            json,
            typed: Arc::new(typed),
        })
    }
    fn decode_plan(&self, recorded: &serde_json::Value) -> Result<ErasedPlan> {
        let typed = self.0.decode_plan(recorded.clone())?;
        Ok(ErasedPlan {
            json: recorded.clone(),
            typed: Arc::new(typed),
        })
    }
    fn info(&self, time: Time, plan: &ErasedPlan) -> InputInfo {
        match self.typed(plan) {
            Ok(p) => self.0.info(time, p),
            Err(_) => InputInfo::default(),
        }
    }
    fn replayed(&self, time: Time, plan: &ErasedPlan) -> Result<()> {
        self.0.replayed(time, self.typed(plan)?)
    }
    fn snapshot_state(&self) -> Result<Option<String>> {
        match self.0.snapshot_state()? {
            Some(state) => serde_json::to_string(&state).map(Some).map_err(|e| {
                StreamingError::serialization(format!("state of a {} input", self.0.kind()), e)
            }),
            None => Ok(None),
        }
    }
    fn restore_state(&self, json: &str) -> Result<()> {
        let state = serde_json::from_str(json).map_err(|e| {
            StreamingError::serialization(format!("state of a {} input", self.0.kind()), e)
        })?;
        self.0.restore_state(state)
    }
    fn batch_completed(&self, info: &BatchInfo) {
        self.0.batch_completed(info)
    }
    fn tasks(&self) -> Result<Option<super::InputTasks>> {
        self.0.tasks()
    }
}
