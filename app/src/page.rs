//! The page: a toolbar, three linked views (axial, coronal, sagittal) and a status line.
//!
//! Reactive state lives in [`Viewer`] (plain, copyable signals); the decoded volume and the
//! canvases' scratch buffers are not reactive and live in thread-locals of this module, so
//! that the 155 MB of a 512 × 512 × 148 scan exist exactly once.

use std::cell::{Cell, RefCell};

use leptos::ev;
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use pulmoseg_core::nifti::{read_nifti, Header, ReadOptions};
use pulmoseg_core::orientation::Reorientation;
use pulmoseg_core::Volume;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, File, HtmlCanvasElement, HtmlInputElement, ImageData};

use pulmoseg_app::protocol::{threshold_level, PAGE_MAX_VOXELS, STAGES};

use crate::browser::{self, now_ms, yield_to_browser};
use crate::label_export::labels_nii_gz;
use crate::overlay::{draw_overlay, OverlayStyle};
use crate::plane::{EdgeLabels, Plane};
use crate::segment::{self, Outcome, SegmentState, SEGMENTATION};
use crate::slice_image::{render_slice, WindowLevel};
use crate::viewport::{Placement, ViewTransform};

/// HU change per pixel of a window/level drag: finer for narrow windows.
fn hu_per_drag_pixel(window: WindowLevel) -> f64 {
    (f64::from(window.width_hu) / 300.0).clamp(0.5, 20.0)
}

/// A scan ready to display: the canonical volume, the way back to the file's grid, and the
/// file's header (for writing a label volume on the same grid).
struct LoadedScan {
    /// The scan on its RAS+ grid, HU.
    volume: Volume,
    /// From the file's grid to `volume`'s.
    reorientation: Reorientation,
    /// The file's header as read.
    header: Header,
    /// The file itself, handed to the segmentation worker.
    file: File,
}

/// Scratch space of the three canvases, kept between redraws.
#[derive(Default)]
struct RenderCache {
    /// One canvas per plane holding the slice at voxel resolution, drawn scaled from there.
    slice_canvases: [Option<HtmlCanvasElement>; 3],
    /// RGBA pixels of the slice being drawn.
    rgba: Vec<u8>,
    /// The overlay's scratch space.
    inside: Vec<bool>,
    /// Where each plane's slice was last drawn, for mapping pointer positions back.
    placements: [Option<Placement>; 3],
}

thread_local! {
    static SCAN: RefCell<Option<LoadedScan>> = const { RefCell::new(None) };
    static RENDER: RefCell<RenderCache> = RefCell::new(RenderCache::default());
    static DRAG: Cell<Option<Drag>> = const { Cell::new(None) };
}

/// What the left mouse button does in the views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PointerMode {
    /// Click or drag moves the crosshair (and so the other views' slices).
    Crosshair,
    /// Drag changes window (horizontal) and level (vertical).
    Window,
    /// Drag moves the image.
    Pan,
}

/// A pointer drag in progress.
#[derive(Debug, Clone, Copy)]
struct Drag {
    plane: Plane,
    pointer_id: i32,
    mode: PointerMode,
    start_x: f64,
    start_y: f64,
    start_window: WindowLevel,
    start_transform: ViewTransform,
}

/// What the page says about the scan it shows.
#[derive(Debug, Clone, PartialEq)]
struct ScanInfo {
    file_name: String,
    /// Canonical grid `[ni, nj, nk]`.
    dims: [usize; 3],
    /// Canonical voxel size in mm.
    spacing_mm: [f64; 3],
    /// Orientation of the file's own voxel axes (e.g. "LPS").
    source_orientation: String,
    /// Edge letters of each plane, indexed by [`Plane::index`].
    labels: [EdgeLabels; 3],
    /// Repairs the reader made to the header.
    warnings: Vec<String>,
}

/// The status line: what the page is doing, as a machine-readable state and a sentence.
#[derive(Debug, Clone, PartialEq)]
struct Status {
    /// "idle", "busy", "ready" or "error".
    state: &'static str,
    text: String,
}

/// The page's reactive state.
#[derive(Clone, Copy)]
struct Viewer {
    /// Bumped whenever the displayed scan changes.
    generation: RwSignal<u64>,
    info: RwSignal<Option<ScanInfo>>,
    /// Crosshair position, canonical voxel `[i, j, k]`; also each view's slice.
    cursor: RwSignal<[usize; 3]>,
    window: RwSignal<WindowLevel>,
    /// Zoom and pan per plane, indexed by [`Plane::index`].
    transforms: RwSignal<[ViewTransform; 3]>,
    mode: RwSignal<PointerMode>,
    /// The view that keys scroll.
    active: RwSignal<Plane>,
    status: RwSignal<Status>,
    error: RwSignal<Option<String>>,
    busy: RwSignal<bool>,
    /// Bumped when the window is resized, so canvases re-measure.
    layout_tick: RwSignal<u32>,
    drop_hover: RwSignal<bool>,
    /// Segmentation: the run, its results, the overlay's settings.
    seg: SegmentState,
}

impl Viewer {
    fn new() -> Self {
        Viewer {
            generation: RwSignal::new(0),
            info: RwSignal::new(None),
            cursor: RwSignal::new([0; 3]),
            window: RwSignal::new(WindowLevel::LUNG),
            transforms: RwSignal::new([ViewTransform::default(); 3]),
            mode: RwSignal::new(PointerMode::Crosshair),
            active: RwSignal::new(Plane::Axial),
            status: RwSignal::new(Status {
                state: "idle",
                text: "No scan open. Drop a chest CT (.nii or .nii.gz) or choose Open scan.".into(),
            }),
            error: RwSignal::new(None),
            busy: RwSignal::new(false),
            layout_tick: RwSignal::new(0),
            drop_hover: RwSignal::new(false),
            seg: SegmentState::new(),
        }
    }

    fn set_status(&self, state: &'static str, text: impl Into<String>) {
        let text = text.into();
        browser::log_info(&text);
        self.status.set(Status { state, text });
    }

    /// Moves the slice of `plane` by `delta`, within the grid.
    fn step_slice(&self, plane: Plane, delta: i64) {
        let Some(dims) = self
            .info
            .with_untracked(|info| info.as_ref().map(|i| i.dims))
        else {
            return;
        };
        let axis = plane.layout().through;
        self.cursor.update(|cursor| {
            let last = dims[axis].saturating_sub(1) as i64;
            cursor[axis] = (cursor[axis] as i64 + delta).clamp(0, last) as usize;
        });
    }

    fn zoom_all(&self, factor: f64) {
        self.transforms.update(|all| {
            for transform in all.iter_mut() {
                *transform = transform.zoomed(factor);
            }
        });
    }
}

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    let viewer = Viewer::new();
    provide_context(viewer);

    let resize = window_event_listener(ev::resize, move |_| viewer.layout_tick.update(|t| *t += 1));
    let keys = window_event_listener(ev::keydown, move |event| on_key(viewer, &event));
    on_cleanup(move || {
        resize.remove();
        keys.remove();
    });

    view! {
        <div class="app">
            <Toolbar/>
            <ErrorBanner/>
            <div class="workspace">
            <main
                class="viewer"
                class:drop-hover=move || viewer.drop_hover.get()
                on:dragover=move |event: ev::DragEvent| {
                    event.prevent_default();
                    viewer.drop_hover.set(true);
                }
                on:dragleave=move |_| viewer.drop_hover.set(false)
                on:drop=move |event: ev::DragEvent| {
                    event.prevent_default();
                    viewer.drop_hover.set(false);
                    let file = event.data_transfer().and_then(|t| t.files()).and_then(|f| f.get(0));
                    match file {
                        // A weights file dropped on the views becomes the model, as "Own model…".
                        Some(file) if file.name().ends_with(".pulmoseg") => open_weights(viewer, file),
                        Some(file) => open_file(viewer, file),
                        None => {}
                    }
                }
            >
                <ViewPanel plane=Plane::Axial/>
                <ViewPanel plane=Plane::Coronal/>
                <ViewPanel plane=Plane::Sagittal/>
                <EmptyState/>
            </main>
            <ResultsPanel/>
            </div>
            <StatusBar/>
        </div>
    }
}

#[component]
fn Toolbar() -> impl IntoView {
    let viewer = expect_context::<Viewer>();
    let no_scan = move || viewer.info.with(|info| info.is_none());
    let mode_button = move |mode: PointerMode, label: &'static str, id: &'static str| {
        view! {
            <button
                id=id
                class="btn"
                class:on=move || viewer.mode.get() == mode
                aria-pressed=move || (viewer.mode.get() == mode).to_string()
                on:click=move |_| viewer.mode.set(mode)
            >
                {label}
            </button>
        }
    };
    let preset = move |window: WindowLevel, label: &'static str, id: &'static str| {
        view! {
            <button
                id=id
                class="btn"
                class:on=move || viewer.window.get() == window
                on:click=move |_| viewer.window.set(window)
            >
                {label}
            </button>
        }
    };

    view! {
        <header class="titlebar">
            <div class="brand">
                <span class="brand-name">"Pulmoseg"</span>
                <span class="brand-sub">"Chest CT viewer · runs in this browser, nothing is uploaded"</span>
            </div>
            <div class="research-note" role="note">"Research use only — not for diagnosis"</div>
        </header>
        <div class="toolbar" role="toolbar">
            <div class="group">
                <label class="btn primary" for="file-input">"Open scan…"</label>
                {file_picker("file-input", ".nii,.gz,.nii.gz", move |file| open_file(viewer, file))}
            </div>
            <div class="group" role="group" aria-label="Window">
                <span class="group-label">"Window"</span>
                {preset(WindowLevel::LUNG, "Lung", "preset-lung")}
                {preset(WindowLevel::MEDIASTINAL, "Mediastinum", "preset-mediastinal")}
                <span id="window-readout" class="readout">
                    {move || {
                        let w = viewer.window.get();
                        format!("W {:.0} / L {:.0}", w.width_hu, w.level_hu)
                    }}
                </span>
            </div>
            <div class="group" role="group" aria-label="Left mouse button">
                <span class="group-label">"Mouse"</span>
                {mode_button(PointerMode::Crosshair, "Crosshair", "mode-crosshair")}
                {mode_button(PointerMode::Window, "Window/level", "mode-window")}
                {mode_button(PointerMode::Pan, "Pan", "mode-pan")}
            </div>
            <div class="group" role="group" aria-label="Zoom">
                <button id="zoom-out" class="btn icon" title="Zoom out" on:click=move |_| viewer.zoom_all(1.0 / 1.25)>
                    "−"
                </button>
                <button id="zoom-in" class="btn icon" title="Zoom in" on:click=move |_| viewer.zoom_all(1.25)>
                    "+"
                </button>
                <button
                    id="zoom-reset"
                    class="btn"
                    on:click=move |_| viewer.transforms.set([ViewTransform::default(); 3])
                >
                    "Fit"
                </button>
            </div>
            <div class="group">
                <button
                    id="export-png"
                    class="btn"
                    disabled=no_scan
                    on:click=move |_| {
                        if let Err(message) = export_png(viewer) {
                            viewer.error.set(Some(format!("PNG export failed: {message}")));
                        }
                    }
                >
                    "Export PNG"
                </button>
            </div>
            <div class="group" role="group" aria-label="Segmentation">
                <button
                    id="segment"
                    class="btn primary"
                    disabled=move || no_scan() || viewer.seg.running.get() || viewer.busy.get()
                    on:click=move |_| start_segmentation(viewer)
                >
                    "Segment"
                </button>
                <label class="check" title="Run the network on the GPU through WebGPU when the browser offers it">
                    <input
                        id="use-webgpu"
                        type="checkbox"
                        prop:checked=move || viewer.seg.use_webgpu.get()
                        on:change=move |event| viewer.seg.use_webgpu.set(event_target_checked(&event))
                    />
                    "GPU"
                </label>
                <label class="btn" for="weights-input" title="Use your own Pulmoseg weights file (.pulmoseg) instead of the page's model">
                    "Own model…"
                </label>
                {file_picker("weights-input", ".pulmoseg", move |file| open_weights(viewer, file))}
            </div>
        </div>
    }
}

/// A hidden file input (its visible button is a `<label for=id>`) that hands the chosen file
/// to `open` and forgets it, so that choosing the same file again fires again.
fn file_picker(
    id: &'static str,
    accept: &'static str,
    open: impl Fn(File) + 'static,
) -> impl IntoView {
    view! {
        <input
            id=id
            class="visually-hidden"
            type="file"
            accept=accept
            on:change=move |event| {
                let input: HtmlInputElement = event_target(&event);
                let file = input.files().and_then(|files| files.get(0));
                input.set_value("");
                if let Some(file) = file {
                    open(file);
                }
            }
        />
    }
}

#[component]
fn ErrorBanner() -> impl IntoView {
    let viewer = expect_context::<Viewer>();
    view! {
        <Show when=move || viewer.error.with(|e| e.is_some())>
            <div id="error" class="error-banner" role="alert">
                <span class="error-text">{move || viewer.error.get().unwrap_or_default()}</span>
                <button class="btn small" on:click=move |_| viewer.error.set(None)>"Dismiss"</button>
            </div>
        </Show>
    }
}

#[component]
fn EmptyState() -> impl IntoView {
    let viewer = expect_context::<Viewer>();
    view! {
        <Show when=move || viewer.info.with(|info| info.is_none())>
            <div class="empty-state">
                <div class="empty-card">
                    <div class="empty-title">"Drop a chest CT here"</div>
                    <div class="empty-text">"NIfTI-1, .nii or .nii.gz — or use Open scan…"</div>
                    <div class="empty-privacy">
                        "The scan is read and shown in this browser tab only. Nothing is uploaded."
                    </div>
                </div>
            </div>
        </Show>
    }
}

#[component]
fn StatusBar() -> impl IntoView {
    let viewer = expect_context::<Viewer>();
    let scan_line = move || {
        viewer.info.with(|info| {
            info.as_ref().map(|info| {
                let [ni, nj, nk] = info.dims;
                let [si, sj, sk] = info.spacing_mm;
                format!(
                    "{} · {ni} × {nj} × {nk} voxels · {si:.3} × {sj:.3} × {sk:.2} mm · stored {}, \
                     shown radiological",
                    info.file_name, info.source_orientation
                )
            })
        })
    };
    let cursor_line = move || {
        viewer.generation.get();
        let [i, j, k] = viewer.cursor.get();
        SCAN.with_borrow(|scan| {
            scan.as_ref().map(|scan| {
                let hu = scan.volume.hu[scan.volume.index(i, j, k)];
                format!("crosshair ({i}, {j}, {k}) · {hu:.0} HU")
            })
        })
    };
    let warnings = move || {
        viewer
            .info
            .with(|info| info.as_ref().map(|i| i.warnings.join(" · ")))
    };

    view! {
        <footer class="statusbar">
            <span
                id="status"
                class="status"
                data-state=move || viewer.status.with(|s| s.state)
            >
                {move || viewer.status.with(|s| s.text.clone())}
            </span>
            <span class="scan-line">{scan_line}</span>
            <span id="cursor-readout" class="scan-line">{cursor_line}</span>
            <span class="warnings">{move || warnings().filter(|w| !w.is_empty())}</span>
        </footer>
    }
}

/// One plane: title, canvas with orientation letters, and a slice slider.
#[component]
fn ViewPanel(plane: Plane) -> impl IntoView {
    let viewer = expect_context::<Viewer>();
    let canvas_ref = NodeRef::<html::Canvas>::new();
    let through = plane.layout().through;

    Effect::new(move |_| {
        viewer.generation.get();
        viewer.layout_tick.get();
        let cursor = viewer.cursor.get();
        let window = viewer.window.get();
        let transform = viewer.transforms.get()[plane.index()];
        viewer.seg.generation.get();
        let style = OverlayStyle {
            infiltrate: viewer.seg.show_infiltrate.get(),
            opacity: viewer.seg.opacity.get(),
            level: threshold_level(viewer.seg.threshold.get()),
            lung_outline: viewer.seg.lung_outline.get(),
        };
        if let Some(canvas) = canvas_ref.get() {
            draw_view(plane, &canvas, cursor, window, transform, style);
        }
    });

    let slice_count = move || {
        viewer
            .info
            .with(|i| i.as_ref().map_or(1, |i| i.dims[through]))
    };
    let label = move |edge: fn(&EdgeLabels) -> char| {
        move || {
            viewer.info.with(|info| {
                info.as_ref()
                    .map(|i| edge(&i.labels[plane.index()]).to_string())
                    .unwrap_or_default()
            })
        }
    };
    let slice_text = move || {
        viewer.info.with(|info| {
            info.as_ref()
                .map(|_| format!("{} / {}", viewer.cursor.get()[through] + 1, slice_count()))
        })
    };

    view! {
        <section
            class=format!("view view-{}", plane.name())
            class:active=move || viewer.active.get() == plane
            data-plane=plane.name()
        >
            <div class="view-head">
                <span class="view-title">{plane.title()}</span>
                <span class="view-slice">{slice_text}</span>
            </div>
            <div
                class="view-body"
                on:pointerenter=move |_| viewer.active.set(plane)
                on:pointerdown=move |event| on_pointer_down(viewer, plane, &event)
                on:pointermove=move |event| on_pointer_move(viewer, &event)
                on:pointerup=move |_| DRAG.with(|drag| drag.set(None))
                on:pointercancel=move |_| DRAG.with(|drag| drag.set(None))
                on:contextmenu=move |event: ev::MouseEvent| event.prevent_default()
                on:wheel=move |event| on_wheel(viewer, plane, &event)
            >
                <canvas node_ref=canvas_ref aria-label=format!("{} slice", plane.title())></canvas>
                <span class="edge-label edge-left" data-edge="left">{label(|l| l.left)}</span>
                <span class="edge-label edge-right" data-edge="right">{label(|l| l.right)}</span>
                <span class="edge-label edge-top" data-edge="top">{label(|l| l.top)}</span>
                <span class="edge-label edge-bottom" data-edge="bottom">{label(|l| l.bottom)}</span>
            </div>
            <input
                id=format!("slider-{}", plane.name())
                class="slice-slider"
                type="range"
                min="0"
                max=move || (slice_count().saturating_sub(1)).to_string()
                step="1"
                prop:value=move || viewer.cursor.get()[through].to_string()
                disabled=move || viewer.info.with(|info| info.is_none())
                aria-label=format!("{} slice", plane.title())
                on:input=move |event| {
                    if let Ok(slice) = event_target_value(&event).parse::<usize>() {
                        viewer.active.set(plane);
                        viewer.cursor.update(|cursor| cursor[through] = slice);
                    }
                }
            />
        </section>
    }
}

/// Arrow and page keys scroll the active view.
fn on_key(viewer: Viewer, event: &ev::KeyboardEvent) {
    let in_input = event
        .target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .is_some_and(|element| element.tag_name() == "INPUT");
    if in_input {
        return;
    }
    let delta = match event.key().as_str() {
        "ArrowUp" => 1,
        "ArrowDown" => -1,
        "PageUp" => 10,
        "PageDown" => -10,
        _ => return,
    };
    if viewer.info.with_untracked(|info| info.is_none()) {
        return;
    }
    event.prevent_default();
    viewer.step_slice(viewer.active.get_untracked(), delta);
}

/// Position of a pointer event in CSS px of the canvas under it.
fn canvas_position(event: &ev::MouseEvent) -> Option<(f64, f64)> {
    let target = event
        .current_target()?
        .dyn_into::<web_sys::Element>()
        .ok()?;
    let rect = target.get_bounding_client_rect();
    Some((
        f64::from(event.client_x()) - rect.left(),
        f64::from(event.client_y()) - rect.top(),
    ))
}

fn on_pointer_down(viewer: Viewer, plane: Plane, event: &ev::PointerEvent) {
    if viewer.info.with_untracked(|info| info.is_none()) {
        return;
    }
    let Some((x, y)) = canvas_position(event) else {
        return;
    };
    let mode = match event.button() {
        1 => PointerMode::Pan,
        2 => PointerMode::Window,
        0 if event.shift_key() => PointerMode::Pan,
        0 => viewer.mode.get_untracked(),
        _ => return,
    };
    viewer.active.set(plane);
    if let Some(target) = event
        .current_target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
    {
        let _ = target.set_pointer_capture(event.pointer_id());
    }
    DRAG.with(|drag| {
        drag.set(Some(Drag {
            plane,
            pointer_id: event.pointer_id(),
            mode,
            start_x: x,
            start_y: y,
            start_window: viewer.window.get_untracked(),
            start_transform: viewer.transforms.get_untracked()[plane.index()],
        }))
    });
    if mode == PointerMode::Crosshair {
        move_crosshair(viewer, plane, x, y);
    }
}

fn on_pointer_move(viewer: Viewer, event: &ev::PointerEvent) {
    let Some(drag) = DRAG.with(Cell::get) else {
        return;
    };
    if drag.pointer_id != event.pointer_id() {
        return;
    }
    let Some((x, y)) = canvas_position(event) else {
        return;
    };
    let (dx, dy) = (x - drag.start_x, y - drag.start_y);
    match drag.mode {
        PointerMode::Crosshair => move_crosshair(viewer, drag.plane, x, y),
        PointerMode::Window => {
            let hu_per_pixel = hu_per_drag_pixel(drag.start_window);
            viewer
                .window
                .set(drag.start_window.dragged(dx, dy, hu_per_pixel));
        }
        PointerMode::Pan => viewer.transforms.update(|all| {
            all[drag.plane.index()] = ViewTransform {
                pan_x: drag.start_transform.pan_x + dx,
                pan_y: drag.start_transform.pan_y + dy,
                ..drag.start_transform
            };
        }),
    }
}

fn on_wheel(viewer: Viewer, plane: Plane, event: &ev::WheelEvent) {
    if viewer.info.with_untracked(|info| info.is_none()) {
        return;
    }
    event.prevent_default();
    let delta_y = event.delta_y();
    if event.ctrl_key() || event.meta_key() {
        let factor = (-delta_y * 0.002).exp();
        viewer
            .transforms
            .update(|all| all[plane.index()] = all[plane.index()].zoomed(factor));
    } else if delta_y != 0.0 {
        viewer.step_slice(plane, if delta_y < 0.0 { 1 } else { -1 });
    }
}

/// Moves the crosshair to the voxel under `(x, y)` of `plane`'s canvas, if there is one.
fn move_crosshair(viewer: Viewer, plane: Plane, x: f64, y: f64) {
    let Some(dims) = viewer
        .info
        .with_untracked(|info| info.as_ref().map(|i| i.dims))
    else {
        return;
    };
    let placement = RENDER.with_borrow(|cache| cache.placements[plane.index()]);
    let Some((px, py)) = placement.and_then(|p| p.slice_pixel_at(x, y)) else {
        return;
    };
    let slice = viewer.cursor.get_untracked()[plane.layout().through];
    viewer.cursor.set(plane.voxel_at(dims, slice, px, py));
}

/// Colour of a plane's crosshair line and title accent (the line in another view that shows
/// where this plane cuts it).
fn plane_colour(plane: Plane) -> &'static str {
    match plane {
        Plane::Axial => "rgba(250, 204, 21, 0.7)",
        Plane::Coronal => "rgba(74, 222, 128, 0.7)",
        Plane::Sagittal => "rgba(56, 189, 248, 0.7)",
    }
}

/// The plane whose slices run along canonical voxel axis `axis`.
fn plane_through(axis: usize) -> Plane {
    Plane::ALL[[2, 1, 0][axis.min(2)]]
}

/// Redraws one view: black background, the windowed slice at its millimetre proportions,
/// and the crosshair lines of the other two planes.
fn draw_view(
    plane: Plane,
    canvas: &HtmlCanvasElement,
    cursor: [usize; 3],
    window: WindowLevel,
    transform: ViewTransform,
    style: OverlayStyle,
) {
    let Some(context) = context_2d(canvas) else {
        return;
    };
    let ratio = web_sys::window()
        .map_or(1.0, |w| w.device_pixel_ratio())
        .max(1.0);
    let css = (
        f64::from(canvas.client_width()),
        f64::from(canvas.client_height()),
    );
    let device = (
        (css.0 * ratio).round() as u32,
        (css.1 * ratio).round() as u32,
    );
    if (canvas.width(), canvas.height()) != device {
        canvas.set_width(device.0);
        canvas.set_height(device.1);
    }
    let _ = context.set_transform(ratio, 0.0, 0.0, ratio, 0.0, 0.0);
    context.set_fill_style_str("#000");
    context.fill_rect(0.0, 0.0, css.0, css.1);

    SCAN.with_borrow(|scan| {
        RENDER.with_borrow_mut(|cache| {
            cache.placements[plane.index()] = None;
            let Some(scan) = scan else {
                return;
            };
            let volume = &scan.volume;
            let slice = cursor[plane.layout().through];
            let size = render_slice(volume, plane, slice, window, &mut cache.rgba);
            SEGMENTATION.with_borrow(|segmentation| {
                if let Some(segmentation) = segmentation
                    .as_ref()
                    .filter(|s| s.summary.canonical_dims == volume.dims)
                {
                    let RenderCache { rgba, inside, .. } = cache;
                    draw_overlay(rgba, plane, slice, segmentation.maps(), style, inside);
                }
            });
            let Some(slice_canvas) = slice_canvas(&mut cache.slice_canvases[plane.index()]) else {
                return;
            };
            if !put_pixels(&slice_canvas, &cache.rgba, size) {
                return;
            }
            let pixel_mm = plane.pixel_size_mm(volume.spacing_mm);
            let placement = Placement::fit(css, size, pixel_mm, transform);
            context.set_image_smoothing_enabled(true);
            let _ = context.draw_image_with_html_canvas_element_and_dw_and_dh(
                &slice_canvas,
                placement.left,
                placement.top,
                placement.width,
                placement.height,
            );
            draw_crosshair(&context, plane, &placement, volume.dims, cursor, css);
            cache.placements[plane.index()] = Some(placement);
        })
    });
}

/// The crosshair: where the other two planes cut this one, with a gap around the centre so
/// the voxel under it stays visible.
fn draw_crosshair(
    context: &CanvasRenderingContext2d,
    plane: Plane,
    placement: &Placement,
    dims: [usize; 3],
    cursor: [usize; 3],
    css: (f64, f64),
) {
    const GAP: f64 = 10.0;
    let layout = plane.layout();
    let (px, py) = plane.pixel_of(dims, cursor);
    let (x, y) = placement.canvas_position(px, py);
    let (x, y) = (x.floor() + 0.5, y.floor() + 0.5);
    context.set_line_width(1.0);

    // The vertical line is the plane through the horizontally shown axis, and vice versa.
    context.set_stroke_style_str(plane_colour(plane_through(layout.horizontal.voxel_axis)));
    context.begin_path();
    context.move_to(x, 0.0);
    context.line_to(x, y - GAP);
    context.move_to(x, y + GAP);
    context.line_to(x, css.1);
    context.stroke();

    context.set_stroke_style_str(plane_colour(plane_through(layout.vertical.voxel_axis)));
    context.begin_path();
    context.move_to(0.0, y);
    context.line_to(x - GAP, y);
    context.move_to(x + GAP, y);
    context.line_to(css.0, y);
    context.stroke();
}

fn context_2d(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok().flatten()?.dyn_into().ok()
}

/// The plane's voxel-resolution canvas, created on first use.
fn slice_canvas(slot: &mut Option<HtmlCanvasElement>) -> Option<HtmlCanvasElement> {
    if slot.is_none() {
        let document = web_sys::window()?.document()?;
        *slot = document.create_element("canvas").ok()?.dyn_into().ok();
    }
    slot.clone()
}

/// Copies RGBA pixels of `size` onto `canvas`, resizing it to match.
fn put_pixels(canvas: &HtmlCanvasElement, rgba: &[u8], size: (usize, usize)) -> bool {
    let (width, height) = (size.0 as u32, size.1 as u32);
    if width == 0 || height == 0 {
        return false;
    }
    if (canvas.width(), canvas.height()) != (width, height) {
        canvas.set_width(width);
        canvas.set_height(height);
    }
    let Some(context) = context_2d(canvas) else {
        return false;
    };
    match ImageData::new_with_u8_clamped_array_and_sh(Clamped(rgba), width, height) {
        Ok(image) => context.put_image_data(&image, 0.0, 0.0).is_ok(),
        Err(_) => false,
    }
}

/// Starts opening `file` unless another one is still being opened.
fn open_file(viewer: Viewer, file: File) {
    if viewer.busy.get_untracked() {
        viewer.error.set(Some(format!(
            "{} was not opened: the previous file is still being read",
            file.name()
        )));
        return;
    }
    viewer.busy.set(true);
    viewer.error.set(None);
    spawn_local(async move {
        let name = file.name();
        if let Err(message) = load_scan(viewer, &file).await {
            browser::log_warn(&message);
            viewer.set_status("error", format!("{name} could not be opened."));
            viewer.error.set(Some(message));
        }
        viewer.busy.set(false);
    });
}

/// Reads, decodes and reorients `file`, reporting each stage on the status line and letting
/// the browser paint between them.
async fn load_scan(viewer: Viewer, file: &File) -> Result<(), String> {
    let name = file.name();
    let megabytes = file.size() / 1e6;

    // The previous scan goes first, so that two never occupy memory together.
    viewer.seg.clear();
    SCAN.with_borrow_mut(|scan| *scan = None);
    viewer.info.set(None);
    viewer.generation.update(|g| *g += 1);

    viewer.set_status("busy", format!("Reading {name} ({megabytes:.1} MB)…"));
    yield_to_browser().await;
    let start = now_ms();
    let bytes = browser::read_file_bytes(file)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let read_ms = now_ms() - start;

    viewer.set_status("busy", format!("Decoding {name} ({megabytes:.1} MB)…"));
    yield_to_browser().await;
    let start = now_ms();
    // Limitation: decoding and reorienting for display run on the page's main thread (about
    // 1 s each for P001 in Chromium), so the page does not respond during them; segmentation,
    // the long part, runs in its Web Worker (see `segment`).
    let options = ReadOptions {
        max_voxels: PAGE_MAX_VOXELS,
    };
    let image =
        read_nifti(&bytes, &options).map_err(|err| format!("{name} could not be opened: {err}"))?;
    drop(bytes);
    let decode_ms = now_ms() - start;

    viewer.set_status("busy", format!("Orienting {name} for display…"));
    yield_to_browser().await;
    let start = now_ms();
    let source_orientation = image.volume.orientation_code();
    let reorientation = Reorientation::to_canonical(&image.volume.affine, image.volume.dims);
    let volume = if reorientation.is_identity() {
        image.volume
    } else {
        image.volume.to_canonical().0
    };
    let orient_ms = now_ms() - start;

    let dims = volume.dims;
    let labels = Plane::ALL.map(|plane| plane.edge_labels(&volume.affine));
    for warning in &image.warnings {
        browser::log_warn(&format!("{name}: {warning}"));
    }
    let info = ScanInfo {
        file_name: name.clone(),
        dims,
        spacing_mm: volume.spacing_mm,
        source_orientation,
        labels,
        warnings: image.warnings,
    };
    SCAN.with_borrow_mut(|scan| {
        *scan = Some(LoadedScan {
            volume,
            reorientation,
            header: image.header,
            file: file.clone(),
        });
    });
    viewer.cursor.set(dims.map(|n| n / 2));
    viewer.window.set(WindowLevel::LUNG);
    viewer.transforms.set([ViewTransform::default(); 3]);
    viewer.info.set(Some(info));
    viewer.generation.update(|g| *g += 1);

    let [ni, nj, nk] = dims;
    viewer.set_status(
        "ready",
        format!(
            "Ready: {ni} × {nj} × {nk} voxels · read {read_ms:.0} ms · decode {decode_ms:.0} ms \
             · orient {orient_ms:.0} ms"
        ),
    );
    Ok(())
}

/// Downloads the three views as one PNG, laid out as on the page, with their titles and
/// orientation letters burnt in.
fn export_png(viewer: Viewer) -> Result<(), String> {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let canvases: Vec<HtmlCanvasElement> = Plane::ALL
        .iter()
        .filter_map(|plane| {
            let selector = format!("[data-plane={}] canvas", plane.name());
            document
                .query_selector(&selector)
                .ok()
                .flatten()?
                .dyn_into()
                .ok()
        })
        .collect();
    if canvases.len() != 3 {
        return Err("the views are not on the page".into());
    }
    let labels = viewer
        .info
        .with_untracked(|info| info.as_ref().map(|i| i.labels))
        .ok_or("no scan is open")?;

    // The page's own arrangement: axial on the left, coronal above sagittal on the right.
    let gap = 8u32;
    let [axial, coronal, sagittal] = [&canvases[0], &canvases[1], &canvases[2]];
    let right_width = coronal.width().max(sagittal.width());
    let width = axial.width() + gap + right_width;
    let height = axial
        .height()
        .max(coronal.height() + gap + sagittal.height());
    let composite: HtmlCanvasElement = document
        .create_element("canvas")
        .map_err(|e| browser::describe(&e))?
        .dyn_into()
        .map_err(|_| "no canvas element")?;
    composite.set_width(width);
    composite.set_height(height);
    let context = context_2d(&composite).ok_or("no 2-D context")?;
    context.set_fill_style_str("#111");
    context.fill_rect(0.0, 0.0, f64::from(width), f64::from(height));

    let right = f64::from(axial.width() + gap);
    let origins = [
        (0.0, 0.0),
        (right, 0.0),
        (right, f64::from(coronal.height() + gap)),
    ];
    context.set_font("bold 16px system-ui, sans-serif");
    context.set_text_baseline("middle");
    context.set_text_align("center");
    context.set_shadow_color("#000");
    context.set_shadow_blur(4.0);
    for ((plane, canvas), (left, top)) in Plane::ALL.iter().zip(&canvases).zip(origins) {
        let (w, h) = (f64::from(canvas.width()), f64::from(canvas.height()));
        context
            .draw_image_with_html_canvas_element(canvas, left, top)
            .map_err(|e| browser::describe(&e))?;
        let edge = labels[plane.index()];
        context.set_fill_style_str("#f8fafc");
        let _ = context.fill_text(&edge.left.to_string(), left + 14.0, top + h / 2.0);
        let _ = context.fill_text(&edge.right.to_string(), left + w - 14.0, top + h / 2.0);
        let _ = context.fill_text(&edge.top.to_string(), left + w / 2.0, top + 14.0);
        let _ = context.fill_text(&edge.bottom.to_string(), left + w / 2.0, top + h - 14.0);
        context.set_text_align("left");
        context.set_fill_style_str(plane_colour(*plane));
        let _ = context.fill_text(plane.title(), left + 10.0, top + 14.0);
        context.set_text_align("center");
    }
    context.set_text_align("left");
    context.set_fill_style_str("#fde68a");
    context.set_font("12px system-ui, sans-serif");
    let note = "Pulmoseg · research use only — not for diagnosis";
    let _ = context.fill_text(note, 10.0, f64::from(height) - 12.0);

    let on_blob =
        wasm_bindgen::closure::Closure::once_into_js(move |blob: wasm_bindgen::JsValue| {
            match blob.dyn_into::<web_sys::Blob>() {
                Ok(blob) => {
                    if let Err(message) = browser::download_blob(&blob, "pulmoseg-views.png") {
                        viewer
                            .error
                            .set(Some(format!("PNG export failed: {message}")));
                    }
                }
                Err(_) => viewer
                    .error
                    .set(Some("PNG export failed: no image was made".into())),
            }
        });
    composite
        .to_blob_with_type(on_blob.unchecked_ref(), "image/png")
        .map_err(|e| browser::describe(&e))
}

/// The open scan's labels (`[ni * nj * nk]` on the canonical grid) as a `.nii.gz` on the
/// file's own grid, for the "Segment" step's download.
fn export_labels(canonical_labels: &[u8]) -> Result<Vec<u8>, String> {
    SCAN.with_borrow(|scan| {
        let scan = scan.as_ref().ok_or("no scan is open")?;
        labels_nii_gz(canonical_labels, &scan.reorientation, &scan.header)
            .map_err(|e| e.to_string())
    })
}

/// The open scan's file name without `.nii` / `.nii.gz`, for download names.
fn scan_base_name(viewer: Viewer) -> String {
    let name = viewer
        .info
        .with_untracked(|info| info.as_ref().map(|i| i.file_name.clone()))
        .unwrap_or_else(|| "scan".into());
    name.strip_suffix(".nii.gz")
        .or_else(|| name.strip_suffix(".nii"))
        .unwrap_or(&name)
        .to_string()
}

/// "Segment": hands the open scan to a fresh worker.
fn start_segmentation(viewer: Viewer) {
    let Some(file) = SCAN.with_borrow(|scan| scan.as_ref().map(|s| s.file.clone())) else {
        viewer.error.set(Some("Open a scan first.".into()));
        return;
    };
    viewer.error.set(None);
    let name = file.name();
    viewer.set_status("busy", format!("Segmenting {name}…"));
    let on_end = move |outcome: Outcome| match outcome {
        Outcome::Done => {
            let text = viewer.seg.summary.with_untracked(|summary| {
                summary.as_ref().map(|s| {
                    format!(
                        "Segmented {name} in {:.1} s on {} · infiltrate {:.1} mL ({:.1} % of the lungs)",
                        s.timings.total_s,
                        backend_name(s),
                        s.quantities.lungs.total.infiltrate_ml,
                        s.quantities.lungs.total.affected_percent
                    )
                })
            });
            viewer.set_status("segmented", text.unwrap_or_default());
        }
        Outcome::Failed(message) => {
            browser::log_warn(&message);
            viewer.set_status("error", format!("Segmentation of {name} failed."));
            viewer
                .error
                .set(Some(format!("Segmentation failed: {message}")));
        }
    };
    if let Err(message) = segment::start(viewer.seg, file, on_end) {
        viewer.set_status("error", "Segmentation could not start.");
        viewer.error.set(Some(message));
    }
}

fn backend_name(summary: &pulmoseg_app::protocol::ResultSummary) -> &'static str {
    match summary.backend {
        pulmoseg_app::protocol::BackendUsed::Webgpu => "WebGPU",
        pulmoseg_app::protocol::BackendUsed::Cpu => "the CPU",
    }
}

/// "Own model…": has the reader's weights file checked and uses it for the next runs.
fn open_weights(viewer: Viewer, file: File) {
    spawn_local(async move {
        let name = file.name();
        let bytes = match browser::read_file_bytes(&file).await {
            Ok(bytes) => bytes,
            Err(message) => {
                viewer.error.set(Some(format!("{name}: {message}")));
                return;
            }
        };
        viewer.set_status("busy", format!("Checking the model {name}…"));
        let shown = name.clone();
        let on_done = move |result: Result<serde_json::Value, String>| match result {
            Ok(card) => {
                viewer.seg.own_weights.set(Some((shown.clone(), card)));
                viewer.set_status(
                    "ready",
                    format!("Using your model {shown} for the next segmentation."),
                );
            }
            Err(message) => {
                viewer.set_status("error", format!("{shown} was not taken as the model."));
                viewer.error.set(Some(message));
            }
        };
        if let Err(message) = segment::set_own_weights(name, bytes, on_done) {
            viewer.error.set(Some(message));
        }
    });
}

/// Downloads the infiltrate mask at the chosen threshold as `.nii.gz` on the file's grid.
fn export_mask(viewer: Viewer) -> Result<(), String> {
    let threshold = viewer.seg.threshold.get_untracked();
    let labels = SEGMENTATION
        .with_borrow(|s| s.as_ref().map(|s| s.labels(threshold)))
        .ok_or("no segmentation yet")?;
    let bytes = export_labels(&labels)?;
    segment::download(
        &bytes,
        "application/gzip",
        &format!("{}_infiltrate.nii.gz", scan_base_name(viewer)),
    )
}

/// Downloads the quantities JSON at the chosen threshold.
fn export_quantities(viewer: Viewer) -> Result<(), String> {
    let quantities = viewer
        .seg
        .quantities
        .get_untracked()
        .ok_or("no segmentation yet")?;
    let json = serde_json::to_vec_pretty(&quantities).map_err(|e| e.to_string())?;
    segment::download(
        &json,
        "application/json",
        &format!("{}_quantities.json", scan_base_name(viewer)),
    )
}

/// The right-hand panel: progress, quantities, overlay settings, exports, model card.
#[component]
fn ResultsPanel() -> impl IntoView {
    let viewer = expect_context::<Viewer>();
    let seg = viewer.seg;
    let has_result = move || seg.summary.with(|s| s.is_some());

    let progress = move || {
        seg.stage.get().map(|(stage, text)| {
            let current = STAGES.iter().position(|s| *s == stage).unwrap_or(0);
            let steps = STAGES
                .iter()
                .enumerate()
                .map(|(n, s)| {
                    let class = if n < current {
                        "step done"
                    } else if n == current {
                        "step now"
                    } else {
                        "step"
                    };
                    view! { <li class=class data-stage=s.name()>{s.name()}</li> }
                })
                .collect_view();
            view! {
                <div id="seg-progress" class="seg-progress" data-stage=stage.name()>
                    <ol class="steps">{steps}</ol>
                    <div class="seg-text">{text}</div>
                </div>
            }
        })
    };

    let row = move |label: &'static str,
                    side: fn(
        &pulmoseg_core::inference::LungQuantities,
    ) -> pulmoseg_core::inference::SideQuantities,
                    id: &'static str| {
        view! {
            <tr data-side=id>
                <th>{label}</th>
                <td class="num">{move || seg.quantities.with(|q| q.as_ref().map(|q| format!("{:.1}", side(&q.lungs).infiltrate_ml)))}</td>
                <td class="num">{move || seg.quantities.with(|q| q.as_ref().map(|q| format!("{:.0}", side(&q.lungs).lung_ml)))}</td>
                <td class="num">{move || seg.quantities.with(|q| q.as_ref().map(|q| format!("{:.1}", side(&q.lungs).affected_percent)))}</td>
            </tr>
        }
    };

    let warnings = move || {
        seg.quantities.with(|q| {
            q.as_ref().map(|q| {
                q.warnings
                    .iter()
                    .map(|w| view! { <li>{w.clone()}</li> })
                    .collect_view()
            })
        })
    };
    let card = move || {
        seg.summary
            .with(|summary| summary.as_ref().map(|s| model_card_lines(&s.model)))
            .or_else(|| {
                seg.own_weights
                    .with(|own| own.as_ref().map(|(_, card)| model_card_lines(card)))
            })
            .map(|lines| {
                lines
                    .into_iter()
                    .map(|(k, v)| view! { <dt>{k}</dt><dd>{v}</dd> })
                    .collect_view()
            })
    };
    let run_line = move || {
        seg.summary.with(|summary| {
            summary.as_ref().map(|s| {
                let t = s.timings;
                format!(
                    "{} · {:.1} s (decode {:.1}, preprocess {:.1}, network {:.1}, postprocess {:.1})",
                    backend_name(s), t.total_s, t.decode_s, t.preprocess_s, t.inference_s, t.postprocess_s
                )
            })
        })
    };

    view! {
        <aside class="results" aria-label="Segmentation results">
            <h2>"Infiltrates"</h2>
            <p class="research-line">"Research use only — not for diagnosis."</p>
            {progress}
            <Show when=move || !has_result() && !seg.running.get()>
                <p class="muted">"Open a scan and press Segment: the network runs in this browser; the scan is not uploaded."</p>
            </Show>
            <Show when=has_result>
                <div id="seg-result" class="seg-result" data-backend=move || seg.summary.with(|s| s.as_ref().map(|s| backend_name(s)))>
                    <table class="quantities">
                        <thead><tr><th></th><th>"infiltrate mL"</th><th>"lung mL"</th><th>"%"</th></tr></thead>
                        <tbody>
                            {row("Right", |l| l.right, "right")}
                            {row("Left", |l| l.left, "left")}
                            {row("Total", |l| l.total, "total")}
                        </tbody>
                    </table>
                    <pre id="quantities-json" hidden>{move || seg.quantities.with(|q| q.as_ref().and_then(|q| serde_json::to_string(q).ok()))}</pre>
                    <p id="seg-notice" class="notice">{move || seg.summary.with(|s| s.as_ref().and_then(|s| s.notice.clone()))}</p>
                    <p id="seg-run" class="muted">{run_line}</p>
                    <ul id="seg-warnings" class="warnings-list">{warnings}</ul>
                    <div class="controls">
                        <label class="check">
                            <input id="show-overlay" type="checkbox" prop:checked=move || seg.show_infiltrate.get()
                                on:change=move |e| seg.show_infiltrate.set(event_target_checked(&e))/>
                            "Infiltrate overlay"
                        </label>
                        <label class="check">
                            <input id="show-lung" type="checkbox" prop:checked=move || seg.lung_outline.get()
                                on:change=move |e| seg.lung_outline.set(event_target_checked(&e))/>
                            "Lung outline"
                        </label>
                        <label class="slider">
                            "Opacity"
                            <input id="opacity" type="range" min="0" max="100" step="5"
                                prop:value=move || ((seg.opacity.get() * 100.0).round() as i32).to_string()
                                on:input=move |e| {
                                    if let Ok(v) = event_target_value(&e).parse::<f32>() {
                                        seg.opacity.set(v / 100.0);
                                    }
                                }
                            />
                        </label>
                        <label class="slider">
                            {move || format!("Threshold {:.2}", seg.threshold.get())}
                            <input id="threshold" type="range" min="13" max="243" step="1"
                                prop:value=move || threshold_level(seg.threshold.get()).to_string()
                                on:input=move |e| {
                                    if let Ok(v) = event_target_value(&e).parse::<f32>() {
                                        seg.threshold.set(v / 256.0);
                                        seg.recount();
                                    }
                                }
                            />
                        </label>
                    </div>
                    <div class="exports">
                        <button id="export-mask" class="btn" on:click=move |_| {
                            if let Err(m) = export_mask(viewer) {
                                viewer.error.set(Some(format!("Mask export failed: {m}")));
                            }
                        }>"Mask .nii.gz"</button>
                        <button id="export-json" class="btn" on:click=move |_| {
                            if let Err(m) = export_quantities(viewer) {
                                viewer.error.set(Some(format!("Quantities export failed: {m}")));
                            }
                        }>"Quantities JSON"</button>
                    </div>
                </div>
            </Show>
            <Show when=move || seg.own_weights.with(|w| w.is_some())>
                <p id="own-weights" class="muted">
                    {move || seg.own_weights.with(|w| w.as_ref().map(|(name, _)| format!("Model: your file {name}")))}
                    " "
                    <button class="btn small" on:click=move |_| {
                        segment::clear_own_weights();
                        seg.own_weights.set(None);
                    }>"Use the page's model"</button>
                </p>
            </Show>
            <h3>"Model"</h3>
            <dl id="model-card" class="model-card">{card}</dl>
        </aside>
    }
}

/// The model card's headline facts, in reading order, from a weights file's description
/// (`name`, `version`, `network`, `model_card`).
fn model_card_lines(model: &serde_json::Value) -> Vec<(&'static str, String)> {
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        serde_json::Value::Number(n) if n.is_f64() => {
            format!("{:.3}", n.as_f64().unwrap_or(f64::NAN))
        }
        other => other.to_string(),
    };
    let card = &model["model_card"];
    let mut lines = vec![(
        "name",
        format!("{} {}", text(&model["name"]), text(&model["version"])),
    )];
    let fields: [(&'static str, &serde_json::Value); 8] = [
        ("network", &card["model"]),
        ("trained on", &card["training_data"]),
        ("cases", &card["training_cases"]),
        ("hardware", &card["hardware"]),
        ("training time", &card["wall_time"]),
        ("tuning Dice", &card["tuning"]["dice"]["mean"]),
        ("tuning NSD", &card["tuning"]["nsd"]["mean"]),
        ("P001 slices", &card["p001"]["summary"]),
    ];
    for (label, value) in fields {
        let value = text(value);
        if !value.is_empty() {
            lines.push((label, value));
        }
    }
    lines
}
