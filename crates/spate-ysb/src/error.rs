//! What can go wrong with YSB data: the crate's one error type, for records that are not the
//! events or window counts the benchmark writes.

/// What can go wrong with YSB data.
#[derive(Debug, thiserror::Error)]
pub enum YsbError {
    /// A record that is not a YSB event in the expected encoding.
    #[error("malformed ad event: {0}")]
    Malformed(String),
    /// An output record that is not a window count.
    #[error("malformed window count: {0}")]
    MalformedCount(String),
}
