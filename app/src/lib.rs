//! What the page and its segmentation worker (`app/worker/`, a crate of its own so that the
//! page's WebAssembly carries no network code) tell each other: [`protocol`].

pub mod protocol;
