//! Pulmoseg's segmentation worker, started by the page as a dedicated Web Worker (see
//! `pulmoseg_app::worker`).

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    pulmoseg_app::worker::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("segment-worker runs in the browser as the page's Web Worker (built by trunk)");
    std::process::exit(2);
}
