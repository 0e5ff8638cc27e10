//! The few browser services the page needs beyond the DOM: reading a dropped file, giving
//! the browser a chance to paint between long steps, timing, and downloads.

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, File, HtmlAnchorElement};

/// Milliseconds since the page started, with sub-millisecond resolution where available.
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|window| window.performance())
        .map(|performance| performance.now())
        .unwrap_or(0.0)
}

/// Logs one line at info level to the browser console.
pub fn log_info(message: &str) {
    web_sys::console::info_1(&JsValue::from_str(message));
}

/// Logs one line at warn level to the browser console.
pub fn log_warn(message: &str) {
    web_sys::console::warn_1(&JsValue::from_str(message));
}

/// The whole content of a file the reader picked or dropped.
pub async fn read_file_bytes(file: &File) -> Result<Vec<u8>, String> {
    let buffer = JsFuture::from(file.array_buffer())
        .await
        .map_err(|err| format!("the browser could not read the file: {}", describe(&err)))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Resolves after the browser has had the chance to paint: after the next animation frame
/// and one more task. A 100 ms timer resolves it too, for tabs that get no frames (hidden),
/// where waiting for one would stall the page.
pub async fn yield_to_browser() {
    let promise = Promise::new(&mut |resolve, _reject| {
        let Some(window) = web_sys::window() else {
            let _ = resolve.call0(&JsValue::NULL);
            return;
        };
        let after_frame = resolve.clone();
        let after_paint = Closure::once_into_js(move || {
            if let Some(window) = web_sys::window() {
                let _ = window.set_timeout_with_callback(after_frame.unchecked_ref());
            }
        });
        let _ = window.request_animation_frame(after_paint.unchecked_ref());
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 100);
    });
    let _ = JsFuture::from(promise).await;
}

/// Offers `blob` to the reader as a download named `file_name`, through a blob URL that is
/// revoked a minute later.
pub fn download_blob(blob: &Blob, file_name: &str) -> Result<(), String> {
    let url = web_sys::Url::create_object_url_with_blob(blob).map_err(|err| describe(&err))?;
    let document = web_sys::window()
        .and_then(|window| window.document())
        .ok_or("the page has no document")?;
    let anchor: HtmlAnchorElement = document
        .create_element("a")
        .map_err(|err| describe(&err))?
        .dyn_into()
        .map_err(|_| "the browser did not create a link element")?;
    anchor.set_href(&url);
    anchor.set_download(file_name);
    anchor.click();

    let revoke = Closure::once_into_js(move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    });
    if let Some(window) = web_sys::window() {
        let _ = window
            .set_timeout_with_callback_and_timeout_and_arguments_0(revoke.unchecked_ref(), 60_000);
    }
    Ok(())
}

/// A readable text for a JavaScript exception.
pub fn describe(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}
