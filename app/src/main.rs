//! Pulmoseg's web page: a clinician drops a chest CT (NIfTI) and sees it in three planes.
//! Everything runs in the browser tab; the scan is never sent anywhere.
//!
//! The pure parts (plane geometry and labels, slice rendering, placement on the canvas,
//! label export) build and test natively; the page itself ([`page`], [`browser`]) only
//! exists on `wasm32`.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod label_export;
mod overlay;
mod plane;
mod slice_image;
mod viewport;

#[cfg(target_arch = "wasm32")]
mod browser;
#[cfg(target_arch = "wasm32")]
mod page;
#[cfg(target_arch = "wasm32")]
mod segment;

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(page::App);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!(
        "pulmoseg-app is a web page: build it for the browser with trunk (scripts/serve builds \
         and serves it)"
    );
    std::process::exit(2);
}
