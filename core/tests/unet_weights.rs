//! The weights file: save → load round trips and every kind of damaged file.

#![cfg(feature = "model")]

use burn::tensor::{Device, Tensor, TensorData};
use pulmoseg_core::orientation::CanonicalOrientation;
use pulmoseg_core::resample::ResizeConvention;
use pulmoseg_core::unet::{UNet, UNetConfig, UNetError};
use pulmoseg_core::weights::tensors::{collect, TensorMismatch};
use pulmoseg_core::weights::{
    self, InferenceMode, NetworkSpec, Preprocessing, Storage, WeightsError, WeightsMetadata,
};
use pulmoseg_core::window::HuWindow;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

fn model(device: &Device) -> UNet {
    device.seed(7);
    UNetConfig::new()
        .with_width(2)
        .init(device)
        .expect("valid config")
}

fn metadata(model: &UNet) -> WeightsMetadata {
    let mut metadata = WeightsMetadata::new(&model.config());
    metadata.preprocessing = Some(Preprocessing {
        window: HuWindow::default(),
        mode: InferenceMode::WholeVolume {
            input_dims: [256, 256, 20],
        },
        resize: ResizeConvention::HalfPixel,
        orientation: CanonicalOrientation::Ras,
    });
    metadata.model_card = serde_json::json!({ "training_data": "none", "dice": null });
    metadata
}

fn input(device: &Device) -> Tensor<5> {
    let values: Vec<f32> = (0..5 * 9 * 11)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    Tensor::from_floats(TensorData::new(values, [1, 1, 5, 9, 11]), device)
}

fn logits(model: &UNet, device: &Device) -> Vec<f32> {
    model
        .forward(input(device))
        .expect("forward")
        .into_data()
        .try_into_vec_as()
        .expect("f32")
}

/// Rebuilds a weights file with its tensors passed through `edit` (name, dtype, shape, bytes).
fn rewrite(
    file: &[u8],
    edit: impl Fn(
        Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    ) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
) -> Vec<u8> {
    let body = &file[12..];
    let container = SafeTensors::deserialize(body).expect("valid container");
    let (_, header) = SafeTensors::read_metadata(body).expect("valid header");
    let tensors = container
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    let tensors = edit(tensors);
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            (
                name.clone(),
                TensorView::new(*dtype, shape.clone(), data).expect("view"),
            )
        })
        .collect();
    let info = header.metadata().clone();
    let mut out = file[..12].to_vec();
    out.extend(safetensors::tensor::serialize(views, info).expect("serialize"));
    out
}

#[test]
fn f32_round_trip_is_exact() {
    let device = Device::default();
    let original = model(&device);
    let meta = metadata(&original);
    let bytes = weights::save(&original, &meta, Storage::F32).expect("save");
    assert_eq!(&bytes[..8], b"PULMOSEG");
    assert_eq!(&bytes[8..12], &1u32.to_le_bytes());

    let (loaded, loaded_meta) = weights::load(&bytes, &device).expect("load");
    assert_eq!(loaded_meta, meta);
    assert_eq!(weights::read_metadata(&bytes), Ok(meta));
    let (a, b) = (
        collect(&original).expect("read"),
        collect(&loaded).expect("read"),
    );
    // 55 144 parameters (PyTorch count at width 2) plus BatchNorm running statistics.
    assert_eq!(loaded.num_trainable_params(), 55_144);
    assert_eq!(a, b);
    assert_eq!(logits(&original, &device), logits(&loaded, &device));
}

#[test]
fn f16_round_trip_is_within_half_precision() {
    let device = Device::default();
    let original = model(&device);
    let f32_len = weights::save(&original, &metadata(&original), Storage::F32)
        .expect("save")
        .len();
    let bytes = weights::save(&original, &metadata(&original), Storage::F16).expect("save");
    // Tensor bytes halve; the header is the same size.
    assert!(
        bytes.len() < f32_len * 6 / 10,
        "f16 {} vs f32 {f32_len} bytes",
        bytes.len()
    );

    let (loaded, _) = weights::load(&bytes, &device).expect("load");
    let (a, b) = (
        collect(&original).expect("read"),
        collect(&loaded).expect("read"),
    );
    for (name, tensor) in &a {
        for (x, y) in tensor.values.iter().zip(&b[name].values) {
            // Round-to-nearest half precision: relative error at most 2^-11 for normal
            // values, absolute 2^-25 below the normal range.
            assert!(
                (x - y).abs() <= x.abs() * 2f32.powi(-11) + 2f32.powi(-25),
                "{name}: {x} vs {y}"
            );
        }
    }
}

#[test]
fn damaged_preambles_are_named() {
    let device = Device::default();
    let good =
        weights::save(&model(&device), &metadata(&model(&device)), Storage::F32).expect("save");

    assert_eq!(
        weights::read_metadata(&good[..7]),
        Err(WeightsError::TooShort { len: 7 })
    );
    let mut bad = good.clone();
    bad[..8].copy_from_slice(b"GGUF\0\0\0\0");
    let err = weights::read_metadata(&bad).expect_err("bad magic");
    assert!(
        matches!(&err, WeightsError::BadMagic { found } if found.starts_with("GGUF")),
        "{err}"
    );

    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(
        weights::read_metadata(&newer),
        Err(WeightsError::NewerVersion {
            found: 2,
            supported: 1
        })
    );
    let mut zero = good.clone();
    zero[8..12].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(
        weights::read_metadata(&zero),
        Err(WeightsError::InvalidVersion)
    );
}

#[test]
fn truncated_and_corrupt_containers_are_named() {
    let device = Device::default();
    let good =
        weights::save(&model(&device), &metadata(&model(&device)), Storage::F32).expect("save");
    let header_len = u64::from_le_bytes(good[12..20].try_into().expect("8 bytes")) as usize;

    // Cut inside the tensor data, and inside the header.
    let cut = good.len() - 100;
    assert_eq!(
        weights::load(&good[..cut], &device).err(),
        Some(WeightsError::Truncated {
            len: cut,
            expected: good.len()
        })
    );
    assert_eq!(
        weights::read_metadata(&good[..40]),
        Err(WeightsError::Truncated {
            len: 40,
            expected: 20 + header_len
        })
    );

    // A byte of the JSON header replaced by a non-JSON character.
    let mut corrupt = good.clone();
    corrupt[21] = b'#';
    let err = weights::read_metadata(&corrupt).expect_err("corrupt header");
    assert!(matches!(err, WeightsError::Corrupt(_)), "{err}");

    // Trailing bytes after the data are not a valid container either.
    let mut longer = good.clone();
    longer.extend_from_slice(&[0; 16]);
    let err = weights::read_metadata(&longer).expect_err("trailing bytes");
    assert!(matches!(err, WeightsError::Corrupt(_)), "{err}");
}

#[test]
fn bad_metadata_is_named() {
    let device = Device::default();
    let m = model(&device);
    let good = weights::save(&m, &metadata(&m), Storage::F32).expect("save");

    // The table's map type depends on safetensors' features, so it is built by `collect`.
    let strip = |info: Option<Vec<(String, String)>>| {
        let body = &good[12..];
        let container = SafeTensors::deserialize(body).expect("valid");
        let views: Vec<(String, TensorView<'_>)> = container.tensors();
        let mut out = good[..12].to_vec();
        let info = info.map(|pairs| pairs.into_iter().collect());
        out.extend(safetensors::tensor::serialize(views, info).expect("serialize"));
        out
    };
    assert_eq!(
        weights::read_metadata(&strip(None)),
        Err(WeightsError::MissingMetadata)
    );
    let invalid = strip(Some(vec![(
        "pulmoseg".to_string(),
        "{\"network\": 3}".to_string(),
    )]));
    let err = weights::read_metadata(&invalid).expect_err("invalid");
    assert!(matches!(err, WeightsError::InvalidMetadata(_)), "{err}");

    let mut odd = metadata(&m);
    odd.network.width = 3;
    let odd_json = serde_json::to_string(&odd).expect("json");
    let odd_file = strip(Some(vec![("pulmoseg".to_string(), odd_json)]));
    assert_eq!(
        weights::load(&odd_file, &device).err(),
        Some(WeightsError::Network(UNetError::InvalidWidth(3)))
    );

    // Saving with metadata for another network is refused.
    let mut wrong = metadata(&m);
    wrong.network = NetworkSpec {
        width: 4,
        in_channels: 1,
        classes: 2,
    };
    assert_eq!(
        weights::save(&m, &wrong, Storage::F32).err(),
        Some(WeightsError::NetworkMismatch {
            metadata: NetworkSpec {
                width: 4,
                in_channels: 1,
                classes: 2
            },
            model: NetworkSpec {
                width: 2,
                in_channels: 1,
                classes: 2
            },
        })
    );
}

#[test]
fn missing_misshaped_and_foreign_tensors_are_named() {
    let device = Device::default();
    let m = model(&device);
    let good = weights::save(&m, &metadata(&m), Storage::F32).expect("save");

    let missing = rewrite(&good, |t| {
        t.into_iter()
            .filter(|(n, ..)| n != "up2.up.weight")
            .collect()
    });
    assert_eq!(
        weights::load(&missing, &device).err(),
        Some(WeightsError::Tensor(TensorMismatch::Missing {
            name: "up2.up.weight".into(),
            // ConvTranspose3d weight [in, out, 2, 2, 2] with in = 4w = 8, out = 2w = 4.
            expected: vec![8, 4, 2, 2, 2],
        }))
    );

    let misshaped = rewrite(&good, |t| {
        t.into_iter()
            .map(|(n, d, s, b)| match n.as_str() {
                "head.out.bias" => (n, d, vec![1, 2], b),
                _ => (n, d, s, b),
            })
            .collect()
    });
    assert_eq!(
        weights::load(&misshaped, &device).err(),
        Some(WeightsError::Tensor(TensorMismatch::Shape {
            name: "head.out.bias".into(),
            expected: vec![2],
            got: vec![1, 2],
        }))
    );

    let foreign = rewrite(&good, |mut t| {
        t.push(("fc.weight".into(), Dtype::F32, vec![1], vec![0; 4]));
        t
    });
    assert_eq!(
        weights::load(&foreign, &device).err(),
        Some(WeightsError::Tensor(TensorMismatch::Unexpected {
            name: "fc.weight".into()
        }))
    );

    let integer = rewrite(&good, |t| {
        t.into_iter()
            .map(|(n, d, s, b)| match n.as_str() {
                "head.out.bias" => (n, Dtype::I32, s, b),
                _ => (n, d, s, b),
            })
            .collect()
    });
    assert_eq!(
        weights::load(&integer, &device).err(),
        Some(WeightsError::UnsupportedDtype {
            name: "head.out.bias".into(),
            dtype: "I32".into()
        })
    );
}

/// `good` with the first value of `head.out.bias` (f32) replaced by `value`.
fn with_head_bias(good: &[u8], value: f32) -> Vec<u8> {
    rewrite(good, |t| {
        t.into_iter()
            .map(|(n, d, s, mut b)| {
                if n == "head.out.bias" {
                    b[..4].copy_from_slice(&value.to_le_bytes());
                }
                (n, d, s, b)
            })
            .collect()
    })
}

#[test]
fn non_finite_weights_are_refused_and_f16_refuses_to_overflow() {
    // A NaN weight makes every logit NaN, which every threshold reads as "no infiltrate":
    // the file must be refused, not used.
    let device = Device::default();
    let m = model(&device);
    let good = weights::save(&m, &metadata(&m), Storage::F32).expect("save");
    for value in [f32::NAN, f32::INFINITY] {
        assert_eq!(
            weights::load(&with_head_bias(&good, value), &device).err(),
            Some(WeightsError::NonFinite {
                name: "head.out.bias".into(),
                count: 1,
            })
        );
    }

    // 1e6 is a finite f32 but beyond f16's largest value, 65504: half precision would store
    // infinity, so saving as f16 is refused; as f32 it round-trips.
    let (large, meta) = weights::load(&with_head_bias(&good, 1e6), &device).expect("1e6 loads");
    assert_eq!(
        weights::save(&large, &meta, Storage::F16).err(),
        Some(WeightsError::HalfOverflow {
            name: "head.out.bias".into(),
            value: 1e6,
        })
    );
    weights::save(&large, &meta, Storage::F32).expect("f32 holds 1e6");
}
