//! Pulmoseg's segmentation worker, started by the page as a dedicated Web Worker (see
//! [`worker`]). A crate of its own: the network code (burn, wgpu) lives only in this binary,
//! which the page loads when the reader presses "Segment".

#[cfg(target_arch = "wasm32")]
mod worker;

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    worker::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("segment-worker runs in the browser as the page's Web Worker (built by trunk)");
    std::process::exit(2);
}
