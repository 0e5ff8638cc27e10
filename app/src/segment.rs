//! "Segment": the page's side of the segmentation worker (`app/worker/`), the results it
//! keeps, the quantities at the chosen threshold, and the exports.
//!
//! The worker is started per run from the URL that `www/post-build.mjs` writes into the
//! page's `<meta name="pulmoseg-worker">`, is handed the scan's `File` (the browser reads it
//! again there; nothing leaves the machine) and, when given, the reader's own weights, and is
//! terminated when it answers, so that its memory goes back to the browser.

use std::cell::RefCell;

use js_sys::{Object, Reflect, Uint8Array};
use leptos::prelude::*;
use pulmoseg_app::protocol::{labels_at, threshold_level, ResultSummary, Stage, STAGES};
use pulmoseg_core::inference::{quantify, InfiltrateMask, Quantities};
use pulmoseg_core::lung_mask::LungMask;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Blob, BlobPropertyBag, ErrorEvent, File, MessageEvent, Worker};

use crate::browser::{self, now_ms};
use crate::overlay::SegmentationMaps;

/// A finished segmentation of the open scan.
pub struct Segmentation {
    pub summary: ResultSummary,
    /// Quantised infiltrate probability on the canonical grid.
    pub levels: Vec<u8>,
    /// Lung labels (1 right, 2 left) on the canonical grid.
    pub lung: Vec<u8>,
}

impl Segmentation {
    pub fn maps(&self) -> SegmentationMaps<'_> {
        SegmentationMaps {
            dims: self.summary.canonical_dims,
            levels: &self.levels,
            lung: &self.lung,
        }
    }

    /// Infiltrate labels on the canonical grid at `threshold`, inside the lung.
    pub fn labels(&self, threshold: f32) -> Vec<u8> {
        labels_at(&self.levels, &self.lung, threshold_level(threshold))
    }

    /// The quantities JSON at `threshold`: the worker's own at its threshold, recounted at
    /// any other.
    pub fn quantities(&self, threshold: f32) -> Quantities {
        let mut quantities = self.summary.quantities.clone();
        if threshold_level(threshold) == threshold_level(self.summary.threshold) {
            return quantities;
        }
        let dims = self.summary.canonical_dims;
        let mask = InfiltrateMask {
            dims,
            labels: self.labels(threshold),
        };
        let lung = LungMask {
            dims,
            labels: self.lung.clone(),
            right_ml: quantities.lungs.right.lung_ml,
            left_ml: quantities.lungs.left.lung_ml,
            warnings: Vec::new(),
        };
        quantities.lungs = quantify(&mask, &lung, self.summary.voxel_ml);
        quantities
    }
}

/// The reactive side of segmentation, part of the page's `Viewer`.
#[derive(Clone, Copy)]
pub struct SegmentState {
    pub running: RwSignal<bool>,
    /// Stage and sentence of the run in progress.
    pub stage: RwSignal<Option<(Stage, String)>>,
    /// `now_ms()` when the run started.
    pub started_ms: RwSignal<f64>,
    /// The finished run's summary (the maps live in [`SEGMENTATION`]).
    pub summary: RwSignal<Option<ResultSummary>>,
    /// Quantities at [`Self::threshold`].
    pub quantities: RwSignal<Option<Quantities>>,
    pub threshold: RwSignal<f32>,
    pub opacity: RwSignal<f32>,
    pub show_infiltrate: RwSignal<bool>,
    pub lung_outline: RwSignal<bool>,
    /// Try WebGPU first (else straight to the CPU backend).
    pub use_webgpu: RwSignal<bool>,
    /// The reader's own weights: file name and model card, once checked.
    pub own_weights: RwSignal<Option<(String, serde_json::Value)>>,
    /// Bumped whenever the maps change, so the views redraw.
    pub generation: RwSignal<u64>,
}

impl SegmentState {
    pub fn new() -> Self {
        SegmentState {
            running: RwSignal::new(false),
            stage: RwSignal::new(None),
            started_ms: RwSignal::new(0.0),
            summary: RwSignal::new(None),
            quantities: RwSignal::new(None),
            threshold: RwSignal::new(0.5),
            opacity: RwSignal::new(0.45),
            show_infiltrate: RwSignal::new(true),
            lung_outline: RwSignal::new(false),
            use_webgpu: RwSignal::new(true),
            own_weights: RwSignal::new(None),
            generation: RwSignal::new(0),
        }
    }

    /// Forgets the result and stops a run in progress (a new scan was opened).
    pub fn clear(&self) {
        stop_worker();
        SEGMENTATION.with_borrow_mut(|s| *s = None);
        self.running.set(false);
        self.stage.set(None);
        self.summary.set(None);
        self.quantities.set(None);
        self.generation.update(|g| *g += 1);
    }

    /// Recounts the quantities after the threshold moved.
    pub fn recount(&self) {
        let threshold = self.threshold.get_untracked();
        let quantities = SEGMENTATION.with_borrow(|s| s.as_ref().map(|s| s.quantities(threshold)));
        self.quantities.set(quantities);
    }
}

/// A running worker and the handlers it calls, kept alive together.
struct RunningWorker {
    worker: Worker,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

thread_local! {
    pub static SEGMENTATION: RefCell<Option<Segmentation>> = const { RefCell::new(None) };
    static WORKER: RefCell<Option<RunningWorker>> = const { RefCell::new(None) };
    static OWN_WEIGHTS: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Terminates the running worker. Its handlers may be the caller, so they are dropped only
/// after the current event has been handled.
fn stop_worker() {
    if let Some(running) = WORKER.with_borrow_mut(Option::take) {
        running.worker.terminate();
        wasm_bindgen_futures::spawn_local(async move { drop(running) });
    }
}

/// How the run ended, for the page.
pub enum Outcome {
    Done,
    Failed(String),
}

/// Starts segmenting `file`; `on_end` is told how it ended.
pub fn start(
    state: SegmentState,
    file: File,
    on_end: impl Fn(Outcome) + 'static,
) -> Result<(), String> {
    let webgpu = state.use_webgpu.get_untracked();
    launch(state, file, webgpu, None, std::rc::Rc::new(on_end))
}

/// One worker for one run. A worker that dies while trying WebGPU (a GPU driver fault that
/// takes the whole worker down) is replaced once by a CPU run that says why.
fn launch(
    state: SegmentState,
    file: File,
    webgpu: bool,
    notice: Option<String>,
    on_end: std::rc::Rc<dyn Fn(Outcome)>,
) -> Result<(), String> {
    stop_worker();
    SEGMENTATION.with_borrow_mut(|s| *s = None);
    state.summary.set(None);
    state.quantities.set(None);
    state.generation.update(|g| *g += 1);

    let url = worker_url()?;
    let worker = Worker::new(&url).map_err(|e| {
        format!(
            "the segmentation worker could not start: {}",
            browser::describe(&e)
        )
    })?;

    let end = on_end.clone();
    let target = worker.clone();
    let request_file = file.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let data = event.data();
        let kind = field(&data, "kind").as_string().unwrap_or_default();
        match kind.as_str() {
            "ready" => {
                if let Err(message) =
                    send_request(&target, &request_file, webgpu, notice.as_deref())
                {
                    finish(state, &*end, Outcome::Failed(message));
                }
            }
            "progress" => {
                let stage = field(&data, "stage").as_string().unwrap_or_default();
                let stage = STAGES
                    .into_iter()
                    .find(|s| s.name() == stage)
                    .unwrap_or(Stage::Decode);
                let text = field(&data, "text").as_string().unwrap_or_default();
                state.stage.set(Some((stage, text)));
            }
            "result" => {
                let outcome = match take_result(&data) {
                    Ok(segmentation) => {
                        let summary = segmentation.summary.clone();
                        SEGMENTATION.with_borrow_mut(|s| *s = Some(segmentation));
                        state.summary.set(Some(summary));
                        state.recount();
                        state.generation.update(|g| *g += 1);
                        Outcome::Done
                    }
                    Err(message) => Outcome::Failed(message),
                };
                finish(state, &*end, outcome);
            }
            "error" => {
                let message = field(&data, "message")
                    .as_string()
                    .unwrap_or_else(|| "unknown error".into());
                finish(state, &*end, Outcome::Failed(message));
            }
            other => browser::log_warn(&format!(
                "segmentation worker sent an unknown message {other:?}"
            )),
        }
    });
    let end = on_end.clone();
    let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
        event.prevent_default();
        let message = format!("the segmentation worker stopped: {}", event.message());
        if webgpu {
            browser::log_warn(&message);
            let notice = format!("WebGPU failed ({message}); the network ran on the CPU instead.");
            let retry = launch(state, file.clone(), false, Some(notice), end.clone());
            if let Err(failed) = retry {
                finish(state, &*end, Outcome::Failed(failed));
            }
            return;
        }
        finish(state, &*end, Outcome::Failed(message));
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    WORKER.with_borrow_mut(|slot| {
        *slot = Some(RunningWorker {
            worker,
            _on_message: on_message,
            _on_error: on_error,
        })
    });
    state.running.set(true);
    state.started_ms.set(now_ms());
    state.stage.set(Some((Stage::Decode, "Starting".into())));
    Ok(())
}

fn finish(state: SegmentState, on_end: &dyn Fn(Outcome), outcome: Outcome) {
    stop_worker();
    state.running.set(false);
    state.stage.set(None);
    on_end(outcome);
}

fn send_request(
    worker: &Worker,
    file: &File,
    webgpu: bool,
    notice: Option<&str>,
) -> Result<(), String> {
    let request = Object::new();
    let set = |key: &str, value: &JsValue| Reflect::set(&request, &JsValue::from_str(key), value);
    let _ = set("file", file.as_ref());
    let _ = set("webgpu", &JsValue::from_bool(webgpu));
    if let Some(notice) = notice {
        let _ = set("notice", &JsValue::from_str(notice));
    }
    if let Some(bytes) =
        OWN_WEIGHTS.with_borrow(|w| w.as_ref().map(|w| Uint8Array::from(w.as_slice())))
    {
        let _ = set("weights", bytes.as_ref());
    }
    worker.post_message(&request).map_err(|e| {
        format!(
            "the scan could not be handed to the worker: {}",
            browser::describe(&e)
        )
    })
}

fn take_result(data: &JsValue) -> Result<Segmentation, String> {
    let summary = field(data, "summary")
        .as_string()
        .ok_or("the worker sent no summary")?;
    let summary: ResultSummary = serde_json::from_str(&summary)
        .map_err(|e| format!("the worker's summary is unreadable: {e}"))?;
    let bytes = |key: &str| -> Result<Vec<u8>, String> {
        let array: Uint8Array = field(data, key)
            .dyn_into()
            .map_err(|_| format!("the worker sent no {key} map"))?;
        Ok(array.to_vec())
    };
    let (levels, lung) = (bytes("levels")?, bytes("lung")?);
    let voxels: usize = summary.canonical_dims.iter().product();
    if levels.len() != voxels || lung.len() != voxels {
        return Err(format!(
            "the worker's maps have {} and {} voxels, the grid {voxels}",
            levels.len(),
            lung.len()
        ));
    }
    Ok(Segmentation {
        summary,
        levels,
        lung,
    })
}

/// The worker's script, as the build wrote it into the page.
fn worker_url() -> Result<String, String> {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let meta = document
        .query_selector("meta[name=pulmoseg-worker]")
        .ok()
        .flatten()
        .ok_or("this build of the page has no segmentation worker")?;
    meta.get_attribute("content")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| "the page names no worker script".into())
}

fn field(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// A worker that checks one weights file, kept alive until it answers.
struct Inspector {
    worker: Worker,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

thread_local! {
    static INSPECTOR: RefCell<Option<Inspector>> = const { RefCell::new(None) };
}

fn stop_inspector() {
    if let Some(inspector) = INSPECTOR.with_borrow_mut(Option::take) {
        inspector.worker.terminate();
        wasm_bindgen_futures::spawn_local(async move { drop(inspector) });
    }
}

/// Has a worker check the reader's weights file (the page itself carries no network code);
/// a good file is kept for the next runs and `on_done` gets its description (name, version,
/// network, model card), a bad one the reason.
pub fn set_own_weights(
    name: String,
    bytes: Vec<u8>,
    on_done: impl Fn(Result<serde_json::Value, String>) + 'static,
) -> Result<(), String> {
    stop_inspector();
    let url = worker_url()?;
    let worker = Worker::new(&url)
        .map_err(|e| format!("the model check could not start: {}", browser::describe(&e)))?;
    let on_done = std::rc::Rc::new(on_done);
    let done = on_done.clone();
    let target = worker.clone();
    let pending = RefCell::new(Some(bytes));
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let data = event.data();
        match field(&data, "kind")
            .as_string()
            .unwrap_or_default()
            .as_str()
        {
            "ready" => {
                let Some(bytes) = pending.borrow_mut().take() else {
                    return;
                };
                let request = Object::new();
                let _ = Reflect::set(
                    &request,
                    &"inspect".into(),
                    &Uint8Array::from(bytes.as_slice()),
                );
                let _ = Reflect::set(&request, &"name".into(), &JsValue::from_str(&name));
                if target.post_message(&request).is_err() {
                    stop_inspector();
                    done(Err(format!(
                        "{name} could not be handed to the model check"
                    )));
                } else {
                    OWN_WEIGHTS.with_borrow_mut(|w| *w = Some(bytes));
                }
            }
            "card" => {
                stop_inspector();
                let card = field(&data, "card").as_string().unwrap_or_default();
                done(serde_json::from_str(&card).map_err(|e| format!("{name}: {e}")));
            }
            "error" => {
                stop_inspector();
                OWN_WEIGHTS.with_borrow_mut(|w| *w = None);
                done(Err(field(&data, "message")
                    .as_string()
                    .unwrap_or_else(|| "unknown error".into())));
            }
            _ => {}
        }
    });
    let done = on_done.clone();
    let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
        event.prevent_default();
        stop_inspector();
        OWN_WEIGHTS.with_borrow_mut(|w| *w = None);
        done(Err(format!("the model check stopped: {}", event.message())));
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    INSPECTOR.with_borrow_mut(|slot| {
        *slot = Some(Inspector {
            worker,
            _on_message: on_message,
            _on_error: on_error,
        })
    });
    Ok(())
}

/// Goes back to the page's own model.
pub fn clear_own_weights() {
    OWN_WEIGHTS.with_borrow_mut(|w| *w = None);
}

/// Offers `bytes` as a download.
pub fn download(bytes: &[u8], mime: &str, file_name: &str) -> Result<(), String> {
    let parts = js_sys::Array::of1(&Uint8Array::from(bytes));
    let options = BlobPropertyBag::new();
    options.set_type(mime);
    let blob = Blob::new_with_u8_array_sequence_and_options(&parts, &options)
        .map_err(|e| browser::describe(&e))?;
    browser::download_blob(&blob, file_name)
}
