//! The segmentation worker: a dedicated Web Worker that decodes the scan, runs the network
//! (burn on WebGPU, or burn-flex on the CPU where WebGPU is missing or fails) and returns the
//! quantised probability and the lung mask on the canonical grid, so that the page's own
//! thread only draws and stays responsive however long the network takes.
//!
//! Messages (plain objects; see `pulmoseg_app::protocol`):
//!
//! - page → worker: `{ file: File, weights?: Uint8Array, webgpu: bool, notice?: string }` to
//!   segment, or `{ inspect: Uint8Array, name: string }` to check a weights file;
//! - worker → page: first `{ kind: "ready" }`; then `{ kind: "progress", stage, text, done,
//!   count }`, `{ kind: "result", summary: JSON text of ResultSummary, levels: Uint8Array,
//!   lung: Uint8Array }`, `{ kind: "card", card: JSON text }`, or `{ kind: "error", message }`.
//!
//! One worker serves one segmentation and is then terminated by the page: its memory (the
//! decoded scan, the full-grid probability) is given back to the browser at once.

use burn::tensor::Device;
use js_sys::{Array, Object, Reflect, Uint8Array};
use pulmoseg_core::inference::summarise;
use pulmoseg_core::lung_mask::{lung_mask, LungMaskOptions};
use pulmoseg_core::nifti::{read_nifti, ReadOptions};
use pulmoseg_core::orientation::Reorientation;
use pulmoseg_core::segment::{infiltrate_probability, largest_tensor_bytes, wgpu_drift_reason};
use pulmoseg_core::unet::UNet;
use pulmoseg_core::weights::{self, WeightsMetadata};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{DedicatedWorkerGlobalScope, File, MessageEvent, Response};

use pulmoseg_app::protocol::{
    quantise_probability, BackendUsed, ResultSummary, Stage, Timings, PAGE_MAX_VOXELS,
    SHIPPED_WEIGHTS_URL,
};

/// Threshold of the quantities the worker reports, as `pulmoseg predict`'s default.
const THRESHOLD: f32 = 0.5;

/// Installs the message handler and tells the page the worker is ready.
pub fn start() {
    let scope = scope();
    let handler = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| {
        spawn_local(async move {
            let request = event.data();
            let outcome = if field(&request, "inspect").is_undefined() {
                segment(request).await
            } else {
                inspect(&request)
            };
            if let Err(message) = outcome {
                post_error(&message);
            }
        });
    });
    scope.set_onmessage(Some(handler.as_ref().unchecked_ref()));
    handler.forget();
    post(&object(&[("kind", "ready".into())]), None);
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn now_s() -> f64 {
    js_sys::Date::now() / 1000.0
}

/// Checks a weights file the reader chose and answers with its description (the page shows
/// its model card and keeps the bytes for the next segmentation).
fn inspect(request: &JsValue) -> Result<(), String> {
    let name = field(request, "name")
        .as_string()
        .unwrap_or_else(|| "the weights file".into());
    let bytes = field(request, "inspect")
        .dyn_into::<Uint8Array>()
        .map_err(|_| format!("{name}: the page sent no bytes"))?
        .to_vec();
    let metadata =
        weights::read_metadata(&bytes).map_err(|e| format!("{name} cannot be used: {e}"))?;
    let Some(preprocessing) = &metadata.preprocessing else {
        return Err(format!(
            "{name} states no CT preprocessing: it is not a segmentation model"
        ));
    };
    preprocessing
        .validate()
        .map_err(|e| format!("{name}: {e}"))?;
    // Building the network from the file checks every tensor's name and shape.
    load_model(&bytes, &Device::flex()).map_err(|e| format!("{name}: {e}"))?;
    let card = serde_json::to_string(&model_description(&metadata)).map_err(|e| e.to_string())?;
    post(
        &object(&[("kind", "card".into()), ("card", card.into())]),
        None,
    );
    Ok(())
}

/// One segmentation, from the file to the posted result.
async fn segment(request: JsValue) -> Result<(), String> {
    let started = now_s();
    let file: File = field(&request, "file")
        .dyn_into()
        .map_err(|_| "the page sent no scan file to the worker".to_string())?;
    let try_webgpu = field(&request, "webgpu").as_bool().unwrap_or(true);
    // Set when the page restarted this run on the CPU after a WebGPU worker crashed.
    let earlier_notice = field(&request, "notice").as_string();
    let name = file.name();

    progress(Stage::Decode, &format!("Decoding {name}"), 0, 1);
    let bytes = read_file(&file).await.map_err(|e| format!("{name}: {e}"))?;
    let options = ReadOptions {
        max_voxels: PAGE_MAX_VOXELS,
    };
    let image =
        read_nifti(&bytes, &options).map_err(|e| format!("{name} could not be read: {e}"))?;
    drop(bytes);
    let volume = image.volume;

    progress(Stage::Decode, "Loading the model", 0, 1);
    let own = field(&request, "weights").dyn_into::<Uint8Array>().ok();
    let weights_bytes = match own {
        Some(array) => array.to_vec(),
        None => fetch_bytes(SHIPPED_WEIGHTS_URL)
            .await
            .map_err(|e| format!("the page's model could not be loaded: {e}"))?,
    };
    let metadata = weights::read_metadata(&weights_bytes)
        .map_err(|e| format!("the weights file cannot be used: {e}"))?;
    let preprocessing = metadata
        .preprocessing
        .clone()
        .ok_or("the weights file states no CT preprocessing: it is not a segmentation model")?;
    preprocessing
        .validate()
        .map_err(|e| format!("the weights file's preprocessing: {e}"))?;

    let needed = largest_tensor_bytes(metadata.network.width, preprocessing.mode.network_dims());
    let (mut backend, mut notice) = (BackendUsed::Cpu, None);
    let mut device = Device::flex();
    let drift = wgpu_drift_reason(preprocessing.mode.network_dims());
    if let (true, Some(why)) = (try_webgpu, &drift) {
        notice = Some(format!(
            "{why}; the network runs on the CPU, which is slower."
        ));
    } else if try_webgpu {
        progress(Stage::Decode, "Starting WebGPU", 0, 1);
        match webgpu_device(needed).await {
            Ok(gpu) => {
                device = gpu;
                backend = BackendUsed::Webgpu;
            }
            Err(why) => {
                notice = Some(format!(
                "WebGPU is not available ({why}); the network runs on the CPU, which is slower."
            ))
            }
        }
    } else {
        notice = Some(earlier_notice.unwrap_or_else(|| {
            "WebGPU is switched off; the network runs on the CPU, which is slower.".into()
        }));
    }
    let mut model = load_model(&weights_bytes, &device)?;
    let decode_s = now_s() - started;

    let step = now_s();
    progress(Stage::Preprocess, "Finding the lungs", 0, 1);
    let lung = lung_mask(&volume, &LungMaskOptions::default())
        .map_err(|e| format!("the lungs could not be found in {name}: {e}"))?;
    let preprocess_s = now_s() - step;

    let step = now_s();
    let report = |done: usize, count: usize| {
        progress(
            Stage::Inference,
            &format!("Network: {done} of {count} patches"),
            done,
            count,
        )
    };
    report(0, 1);
    let probability =
        match infiltrate_probability(&model, &device, &volume, &preprocessing, report).await {
            Ok(probability) => probability,
            Err(err) if backend == BackendUsed::Webgpu => {
                notice = Some(format!(
                    "WebGPU failed ({err}); the network ran on the CPU instead."
                ));
                backend = BackendUsed::Cpu;
                device = Device::flex();
                model = load_model(&weights_bytes, &device)?;
                infiltrate_probability(&model, &device, &volume, &preprocessing, report)
                    .await
                    .map_err(|e| format!("the network failed on the CPU too: {e}"))?
            }
            Err(err) => return Err(format!("the network failed: {err}")),
        };
    drop(model);
    let inference_s = now_s() - step;

    let step = now_s();
    progress(Stage::Postprocess, "Mask and quantities", 0, 1);
    let model_id = (metadata.name.as_str(), metadata.version.as_str());
    let (_, quantities) = summarise(
        &volume,
        &lung,
        &probability,
        THRESHOLD,
        model_id,
        &image.warnings,
    );
    let reorientation = Reorientation::to_canonical(&volume.affine, volume.dims);
    let levels = reorientation.to_canonical_data(&quantise_probability(&probability));
    drop(probability);
    let lung_labels = reorientation.to_canonical_data(&lung.labels);
    let postprocess_s = now_s() - step;

    let summary = ResultSummary {
        canonical_dims: reorientation.canonical_dims(),
        quantities,
        threshold: THRESHOLD,
        voxel_ml: volume.voxel_ml(),
        model: model_description(&metadata),
        backend,
        notice,
        timings: Timings {
            decode_s,
            preprocess_s,
            inference_s,
            postprocess_s,
            total_s: now_s() - started,
        },
    };
    let summary = serde_json::to_string(&summary).map_err(|e| e.to_string())?;
    let levels = Uint8Array::from(levels.as_slice());
    let lung_labels = Uint8Array::from(lung_labels.as_slice());
    let message = object(&[
        ("kind", "result".into()),
        ("summary", summary.into()),
        ("levels", levels.clone().into()),
        ("lung", lung_labels.clone().into()),
    ]);
    post(
        &message,
        Some(Array::of2(&levels.buffer(), &lung_labels.buffer())),
    );
    Ok(())
}

/// The network in evaluation form on `device`.
fn load_model(bytes: &[u8], device: &Device) -> Result<UNet, String> {
    weights::load(bytes, device)
        .map(|(model, _)| model)
        .map_err(|e| format!("the weights file cannot be loaded: {e}"))
}

/// burn's WebGPU device, after checking that the adapter grants buffers as large as the
/// network's largest tensor (burn asks the adapter for all the limits it has).
async fn webgpu_device(needed: u64) -> Result<Device, String> {
    adapter_offered().await?;
    let (device, setup) = Device::wgpu_options()
        .init_with_setup_async()
        .await
        .map_err(|e| e.to_string())?;
    let limits = setup.device.limits();
    let granted = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    if needed > granted {
        return Err(format!(
            "the network needs buffers of {} MiB, this GPU grants at most {} MiB",
            needed >> 20,
            granted >> 20
        ));
    }
    Ok(device)
}

/// Whether this browser offers a WebGPU adapter at all, asked directly, so that a browser
/// without one takes the CPU path with a clear reason instead of failing inside wgpu.
async fn adapter_offered() -> Result<(), String> {
    let navigator = field(&scope().into(), "navigator");
    let gpu = field(&navigator, "gpu");
    if gpu.is_undefined() || gpu.is_null() {
        return Err("this browser offers no WebGPU".into());
    }
    let request = field(&gpu, "requestAdapter")
        .dyn_into::<js_sys::Function>()
        .map_err(|_| "navigator.gpu has no requestAdapter".to_string())?;
    let promise = request
        .call0(&gpu)
        .map_err(|e| describe(&e))?
        .dyn_into::<js_sys::Promise>()
        .map_err(|_| "requestAdapter did not return a promise".to_string())?;
    let adapter = JsFuture::from(promise).await.map_err(|e| describe(&e))?;
    if adapter.is_null() || adapter.is_undefined() {
        return Err("the browser has WebGPU but no adapter for it".into());
    }
    Ok(())
}

/// What the page shows about the model: its identity, network and model card.
fn model_description(metadata: &WeightsMetadata) -> serde_json::Value {
    serde_json::json!({
        "name": metadata.name,
        "version": metadata.version,
        "network": metadata.network,
        "class_names": metadata.class_names,
        "model_card": metadata.model_card,
    })
}

async fn read_file(file: &File) -> Result<Vec<u8>, String> {
    let buffer = JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| format!("the browser could not read the file: {}", describe(&e)))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// The bytes at `url` on the page's own origin.
async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let response = JsFuture::from(scope().fetch_with_str(url))
        .await
        .map_err(|e| describe(&e))?;
    let response: Response = response.dyn_into().map_err(|_| "no response".to_string())?;
    if !response.ok() {
        return Err(format!(
            "{url}: HTTP {} {}",
            response.status(),
            response.status_text()
        ));
    }
    let buffer = response.array_buffer().map_err(|e| describe(&e))?;
    let buffer = JsFuture::from(buffer).await.map_err(|e| describe(&e))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

fn progress(stage: Stage, text: &str, done: usize, count: usize) {
    post(
        &object(&[
            ("kind", "progress".into()),
            ("stage", stage.name().into()),
            ("text", text.into()),
            ("done", (done as f64).into()),
            ("count", (count as f64).into()),
        ]),
        None,
    );
}

fn post_error(message: &str) {
    post(
        &object(&[("kind", "error".into()), ("message", message.into())]),
        None,
    );
}

fn post(message: &JsValue, transfer: Option<Array>) {
    let scope = scope();
    let sent = match transfer {
        Some(transfer) => scope.post_message_with_transfer(message, &transfer),
        None => scope.post_message(message),
    };
    if let Err(err) = sent {
        web_sys::console::error_1(&err);
    }
}

fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let object = Object::new();
    for (key, value) in fields {
        let _ = Reflect::set(&object, &JsValue::from_str(key), value);
    }
    object.into()
}

fn field(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn describe(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}
