//! Pulmoseg's weights file: a trained network, its configuration, its preprocessing and its
//! model card in one self-describing file, read from bytes and written to bytes.
//!
//! # Layout (format version 1; `docs/weights-format.md` has the full description)
//!
//! | offset | size | content |
//! | --- | --- | --- |
//! | 0 | 8 | magic `PULMOSEG` (ASCII) |
//! | 8 | 4 | format version, `u32` little-endian (`1`) |
//! | 12 | rest | a [safetensors](https://github.com/huggingface/safetensors) container |
//!
//! The safetensors header's `__metadata__` holds one entry, `"pulmoseg"`, whose value is the
//! [`WeightsMetadata`] as a JSON string. Tensors are named by the module path
//! (`encoder.layer1.0.conv1.weight`, `encoder.stem.bn.running_mean`, `up1.up.bias`), with
//! burn's layouts (the same as PyTorch's) and burn's names for BatchNorm's affine parameters
//! (`gamma`, `beta`). Element types: `F32`, or `F16` to halve the download.

pub mod metadata;
pub mod tensors;

pub use metadata::{InferenceMode, NetworkSpec, Preprocessing, WeightsMetadata};
pub use tensors::{NamedTensor, TensorMismatch};

use std::collections::BTreeMap;

use burn::tensor::Device;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::unet::{UNet, UNetConfig, UNetError};

/// The first eight bytes of every weights file.
pub const MAGIC: [u8; 8] = *b"PULMOSEG";
/// The format version this code writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// Key of the Pulmoseg metadata in the safetensors `__metadata__` table.
pub const METADATA_KEY: &str = "pulmoseg";

const PREAMBLE_LEN: usize = 12;

/// Element type of the stored tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// 32-bit floats: exact.
    F32,
    /// IEEE half floats: half the size, about 3 significant digits (relative error ≤ 2⁻¹¹).
    F16,
}

/// Why a weights file could not be read or written.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WeightsError {
    /// Shorter than the 12-byte preamble.
    #[error("weights file is {len} bytes, shorter than its 12-byte preamble")]
    TooShort {
        /// Length of the input.
        len: usize,
    },
    /// The first eight bytes are not `PULMOSEG`.
    #[error("not a Pulmoseg weights file: it starts with {found:?}, expected \"PULMOSEG\"")]
    BadMagic {
        /// The first eight bytes, lossily as text.
        found: String,
    },
    /// Written by a newer Pulmoseg.
    #[error(
        "weights file has format version {found}; this Pulmoseg reads versions up to \
         {supported}: update Pulmoseg"
    )]
    NewerVersion {
        /// Version in the file.
        found: u32,
        /// [`FORMAT_VERSION`].
        supported: u32,
    },
    /// Version 0 does not exist.
    #[error("weights file has format version 0, which no Pulmoseg writes: the file is corrupt")]
    InvalidVersion,
    /// The file ends before the data its header announces.
    #[error("weights file is truncated: it has {len} bytes, its header announces {expected}")]
    Truncated {
        /// Length of the input.
        len: usize,
        /// Length the header implies.
        expected: usize,
    },
    /// The tensor container is malformed.
    #[error("weights file is corrupt: {0}")]
    Corrupt(String),
    /// No `pulmoseg` metadata entry.
    #[error("weights file has no \"pulmoseg\" metadata entry")]
    MissingMetadata,
    /// The metadata is not valid JSON of the expected form.
    #[error("weights file metadata is invalid: {0}")]
    InvalidMetadata(String),
    /// The metadata describes an impossible network.
    #[error("weights file describes an invalid network: {0}")]
    Network(#[from] UNetError),
    /// A tensor is stored in an element type other than F32 / F16.
    #[error("tensor {name} is stored as {dtype}, expected F32 or F16")]
    UnsupportedDtype {
        /// The tensor's name.
        name: String,
        /// Its element type.
        dtype: String,
    },
    /// The tensors do not fit the network.
    #[error("weights file does not fit the network: {0}")]
    Tensor(#[from] TensorMismatch),
    /// The metadata given to [`save`] does not describe the network saved.
    #[error("metadata describes network {metadata:?}, the network saved is {model:?}")]
    NetworkMismatch {
        /// `metadata.network`.
        metadata: NetworkSpec,
        /// The saved network's configuration.
        model: NetworkSpec,
    },
    /// The network's tensors could not be read from the device.
    #[error("reading the network's tensors failed: {0}")]
    Read(String),
    /// A tensor holds NaN or infinite values: such a network answers NaN, which every
    /// threshold reads as "no infiltrate", a silent false negative.
    #[error("tensor {name} holds {count} NaN or infinite values: the weights are corrupt")]
    NonFinite {
        /// The tensor's name.
        name: String,
        /// How many of its values are not finite.
        count: usize,
    },
    /// Half precision cannot hold a value of the network (|v| > 65504, f16's largest).
    #[error("tensor {name} holds {value}, beyond half precision's ±65504: store it as f32")]
    HalfOverflow {
        /// The tensor's name.
        name: String,
        /// The first value that does not fit.
        value: f32,
    },
}

/// Writes `model` and `metadata` as a weights file.
///
/// `metadata.network` must describe `model` (it is what [`load`] builds); every float
/// tensor is stored, BatchNorm running statistics included.
pub fn save(
    model: &UNet,
    metadata: &WeightsMetadata,
    storage: Storage,
) -> Result<Vec<u8>, WeightsError> {
    let spec = NetworkSpec::from(&model.config());
    if spec != metadata.network {
        return Err(WeightsError::NetworkMismatch {
            metadata: metadata.network,
            model: spec,
        });
    }
    let tensors = tensors::collect(model).map_err(WeightsError::Read)?;
    for (name, tensor) in &tensors {
        check_finite(name, &tensor.values)?;
        if storage == Storage::F16 {
            if let Some(&value) = tensor
                .values
                .iter()
                .find(|v| v.abs() > f32::from(half::f16::MAX))
            {
                return Err(WeightsError::HalfOverflow {
                    name: name.clone(),
                    value,
                });
            }
        }
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, tensor)| {
            let data = match storage {
                Storage::F32 => tensor.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                Storage::F16 => tensor
                    .values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
            };
            (name, tensor.shape, data)
        })
        .collect();
    let dtype = match storage {
        Storage::F32 => Dtype::F32,
        Storage::F16 => Dtype::F16,
    };

    let mut views = Vec::with_capacity(bytes.len());
    for (name, shape, data) in &bytes {
        let view = TensorView::new(dtype, shape.clone(), data)
            .map_err(|err| WeightsError::Corrupt(format!("tensor {name}: {err}")))?;
        views.push((name.as_str(), view));
    }
    let json = serde_json::to_string(metadata)
        .map_err(|err| WeightsError::InvalidMetadata(err.to_string()))?;
    let info = Some([(METADATA_KEY.to_string(), json)].into_iter().collect());
    let body = safetensors::tensor::serialize(views, info)
        .map_err(|err| WeightsError::Corrupt(err.to_string()))?;

    let mut out = Vec::with_capacity(PREAMBLE_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads a weights file: builds the network its metadata describes on `device` and loads
/// every tensor into it (all must be present, with the network's shapes).
pub fn load(bytes: &[u8], device: &Device) -> Result<(UNet, WeightsMetadata), WeightsError> {
    let (container, metadata) = open(bytes)?;
    let config: UNetConfig = metadata.network.into();
    let model = config.init(device)?;

    let mut source = BTreeMap::new();
    for (name, view) in container.tensors() {
        let values = decode(&name, &view)?;
        check_finite(&name, &values)?;
        source.insert(
            name,
            NamedTensor {
                shape: view.shape().to_vec(),
                values,
            },
        );
    }
    let model = tensors::apply(model, &source, true)?;
    Ok((model, metadata))
}

/// Refuses a tensor with NaN or infinite values, naming it and counting them.
fn check_finite(name: &str, values: &[f32]) -> Result<(), WeightsError> {
    let count = values.iter().filter(|v| !v.is_finite()).count();
    if count > 0 {
        return Err(WeightsError::NonFinite {
            name: name.to_string(),
            count,
        });
    }
    Ok(())
}

/// Reads only the metadata (to show a model card before building the network).
pub fn read_metadata(bytes: &[u8]) -> Result<WeightsMetadata, WeightsError> {
    open(bytes).map(|(_, metadata)| metadata)
}

/// Checks the preamble and the container and parses the metadata.
fn open(bytes: &[u8]) -> Result<(SafeTensors<'_>, WeightsMetadata), WeightsError> {
    let Some((preamble, body)) = bytes.split_first_chunk::<PREAMBLE_LEN>() else {
        return Err(WeightsError::TooShort { len: bytes.len() });
    };
    let (magic, version) = preamble.split_at(8);
    if magic != MAGIC {
        return Err(WeightsError::BadMagic {
            found: String::from_utf8_lossy(magic).into_owned(),
        });
    }
    let version = u32::from_le_bytes([version[0], version[1], version[2], version[3]]);
    if version == 0 {
        return Err(WeightsError::InvalidVersion);
    }
    if version > FORMAT_VERSION {
        return Err(WeightsError::NewerVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }

    check_length(bytes.len(), body)?;
    let corrupt = |err: safetensors::SafeTensorError| WeightsError::Corrupt(err.to_string());
    let container = SafeTensors::deserialize(body).map_err(corrupt)?;
    let (_, header) = SafeTensors::read_metadata(body).map_err(corrupt)?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|table| table.get(METADATA_KEY))
        .ok_or(WeightsError::MissingMetadata)?;
    let metadata: WeightsMetadata =
        serde_json::from_str(json).map_err(|err| WeightsError::InvalidMetadata(err.to_string()))?;
    Ok((container, metadata))
}

/// Compares the file's length with what the safetensors header announces, so that a cut-off
/// download is reported as such rather than as a generic container error.
fn check_length(file_len: usize, body: &[u8]) -> Result<(), WeightsError> {
    let Some(header_len) = body.first_chunk::<8>().map(|n| u64::from_le_bytes(*n)) else {
        return Err(WeightsError::Truncated {
            len: file_len,
            expected: PREAMBLE_LEN + 8,
        });
    };
    let header_end = usize::try_from(header_len)
        .ok()
        .and_then(|n| n.checked_add(PREAMBLE_LEN + 8))
        .ok_or_else(|| WeightsError::Corrupt(format!("header length {header_len} is absurd")))?;
    let Some(header) = body.get(8..header_end - PREAMBLE_LEN) else {
        return Err(WeightsError::Truncated {
            len: file_len,
            expected: header_end,
        });
    };

    // The largest end offset in the tensor table is the data length the header announces;
    // a malformed table is left for the container parser to describe.
    let Ok(table) = serde_json::from_slice::<serde_json::Value>(header) else {
        return Ok(());
    };
    let data_len = table
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, entry)| entry.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let expected = usize::try_from(data_len)
        .ok()
        .and_then(|n| n.checked_add(header_end));
    match expected {
        Some(expected) if expected > file_len => Err(WeightsError::Truncated {
            len: file_len,
            expected,
        }),
        _ => Ok(()),
    }
}

/// The values of one stored tensor as f32.
fn decode(name: &str, view: &TensorView<'_>) -> Result<Vec<f32>, WeightsError> {
    let data = view.data();
    match view.dtype() {
        Dtype::F32 => Ok(data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()),
        Dtype::F16 => Ok(data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect()),
        other => Err(WeightsError::UnsupportedDtype {
            name: name.to_string(),
            dtype: format!("{other:?}"),
        }),
    }
}
