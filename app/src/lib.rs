//! The parts of the page that its segmentation worker shares: the messages between them
//! ([`protocol`]) and, in the browser, the worker itself.

pub mod protocol;

#[cfg(target_arch = "wasm32")]
pub mod worker;
