//! NIfTI-1 voxel datatypes and their decoding from disk bytes to scaled f32.

use super::error::NiftiError;
use super::header::Endianness;

/// The voxel types this reader decodes (NIfTI-1 `datatype` codes in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// Unsigned 8-bit integer (2).
    Uint8,
    /// Signed 8-bit integer (256).
    Int8,
    /// Signed 16-bit integer (4), the usual CT type.
    Int16,
    /// Unsigned 16-bit integer (512).
    Uint16,
    /// Signed 32-bit integer (8).
    Int32,
    /// Unsigned 32-bit integer (768).
    Uint32,
    /// IEEE 32-bit float (16).
    Float32,
    /// IEEE 64-bit float (64).
    Float64,
}

impl DataType {
    /// The datatype of a header's `datatype` code, or an error naming any other code.
    pub fn from_code(code: i16) -> Result<Self, NiftiError> {
        Ok(match code {
            2 => DataType::Uint8,
            256 => DataType::Int8,
            4 => DataType::Int16,
            512 => DataType::Uint16,
            8 => DataType::Int32,
            768 => DataType::Uint32,
            16 => DataType::Float32,
            64 => DataType::Float64,
            _ => {
                return Err(NiftiError::UnsupportedDatatype {
                    code,
                    name: code_name(code),
                })
            }
        })
    }

    /// The NIfTI-1 `datatype` code.
    pub fn code(self) -> i16 {
        match self {
            DataType::Uint8 => 2,
            DataType::Int8 => 256,
            DataType::Int16 => 4,
            DataType::Uint16 => 512,
            DataType::Int32 => 8,
            DataType::Uint32 => 768,
            DataType::Float32 => 16,
            DataType::Float64 => 64,
        }
    }

    /// Lower-case name as numpy and nibabel spell it, e.g. `"int16"`.
    pub fn name(self) -> &'static str {
        code_name(self.code())
    }

    /// Bytes one voxel occupies on disk.
    pub fn bytes_per_voxel(self) -> usize {
        match self {
            DataType::Uint8 | DataType::Int8 => 1,
            DataType::Int16 | DataType::Uint16 => 2,
            DataType::Int32 | DataType::Uint32 | DataType::Float32 => 4,
            DataType::Float64 => 8,
        }
    }

    /// The `bitpix` a header of this datatype must carry.
    pub fn bitpix(self) -> i16 {
        8 * self.bytes_per_voxel() as i16
    }
}

/// The standard's name of any NIfTI-1 datatype code, supported or not.
fn code_name(code: i16) -> &'static str {
    match code {
        0 => "unknown",
        1 => "binary",
        2 => "uint8",
        4 => "int16",
        8 => "int32",
        16 => "float32",
        32 => "complex64",
        64 => "float64",
        128 => "rgb24",
        255 => "all",
        256 => "int8",
        512 => "uint16",
        768 => "uint32",
        1024 => "int64",
        1280 => "uint64",
        1536 => "float128",
        1792 => "complex128",
        2048 => "complex256",
        2304 => "rgba32",
        _ => "not a NIfTI-1 datatype",
    }
}

/// Linear intensity scaling `value = slope · stored + inter`, already validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaling {
    /// Multiplier of the stored value.
    pub slope: f64,
    /// Offset added after the multiplication.
    pub inter: f64,
}

impl Scaling {
    /// True when the scaling leaves values unchanged.
    pub fn is_identity(&self) -> bool {
        self.slope == 1.0 && self.inter == 0.0
    }
}

/// Decodes `raw` (exactly `n · bytes_per_voxel` bytes in disk order) into `n` scaled f32
/// values in the same order.
pub fn decode(raw: &[u8], datatype: DataType, endian: Endianness, scaling: Scaling) -> Vec<f32> {
    let mut out = Vec::with_capacity(raw.len() / datatype.bytes_per_voxel());
    decode_into(raw, datatype, endian, scaling, &mut out);
    out
}

/// Appends the scaled f32 values of `raw` (a whole number of voxels in disk order) to `out`.
///
/// Scaling is done in f64 and rounded once to f32, as nibabel's `get_fdata()` followed by a
/// cast to float32 does, so 32-bit integers and doubles keep their precision until the end.
/// Each byte order and type gets its own loop so that the compiler can vectorise it.
pub fn decode_into(
    raw: &[u8],
    datatype: DataType,
    endian: Endianness,
    scaling: Scaling,
    out: &mut Vec<f32>,
) {
    macro_rules! convert {
        ($ty:ty, $n:literal, $from_bytes:path) => {{
            let values = raw.chunks_exact($n).map(|c| {
                let mut bytes = [0u8; $n];
                bytes.copy_from_slice(c);
                $from_bytes(bytes)
            });
            if scaling.is_identity() {
                out.extend(values.map(|v| v as f32));
            } else {
                let Scaling { slope, inter } = scaling;
                out.extend(values.map(|v| (v as f64 * slope + inter) as f32));
            }
        }};
    }

    use Endianness::{Big, Little};
    match (datatype, endian) {
        (DataType::Uint8, _) => convert!(u8, 1, u8::from_le_bytes),
        (DataType::Int8, _) => convert!(i8, 1, i8::from_le_bytes),
        (DataType::Int16, Little) => convert!(i16, 2, i16::from_le_bytes),
        (DataType::Int16, Big) => convert!(i16, 2, i16::from_be_bytes),
        (DataType::Uint16, Little) => convert!(u16, 2, u16::from_le_bytes),
        (DataType::Uint16, Big) => convert!(u16, 2, u16::from_be_bytes),
        (DataType::Int32, Little) => convert!(i32, 4, i32::from_le_bytes),
        (DataType::Int32, Big) => convert!(i32, 4, i32::from_be_bytes),
        (DataType::Uint32, Little) => convert!(u32, 4, u32::from_le_bytes),
        (DataType::Uint32, Big) => convert!(u32, 4, u32::from_be_bytes),
        (DataType::Float32, Little) => convert!(f32, 4, f32::from_le_bytes),
        (DataType::Float32, Big) => convert!(f32, 4, f32::from_be_bytes),
        (DataType::Float64, Little) => convert!(f64, 8, f64::from_le_bytes),
        (DataType::Float64, Big) => convert!(f64, 8, f64::from_be_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDENTITY: Scaling = Scaling {
        slope: 1.0,
        inter: 0.0,
    };

    #[test]
    fn int16_in_both_byte_orders() {
        // -1024 is 0xFC00: bytes 00 FC little-endian, FC 00 big-endian; 1563 is 0x061B.
        let le = [0x00, 0xFC, 0x1B, 0x06];
        let be = [0xFC, 0x00, 0x06, 0x1B];
        assert_eq!(
            decode(&le, DataType::Int16, Endianness::Little, IDENTITY),
            [-1024.0, 1563.0]
        );
        assert_eq!(
            decode(&be, DataType::Int16, Endianness::Big, IDENTITY),
            [-1024.0, 1563.0]
        );
    }

    #[test]
    fn scaling_is_applied_in_f64() {
        // uint16 40000 (0x9C40) with slope 2, inter -1024: 2 * 40000 - 1024 = 78976.
        let raw = [0x40, 0x9C];
        let scaling = Scaling {
            slope: 2.0,
            inter: -1024.0,
        };
        assert_eq!(
            decode(&raw, DataType::Uint16, Endianness::Little, scaling),
            [78976.0]
        );
        // int32 16777217 = 2^24 + 1 is not representable in f32; minus 1 in f64 it is 2^24.
        let raw = 16_777_217i32.to_le_bytes();
        let scaling = Scaling {
            slope: 1.0,
            inter: -1.0,
        };
        assert_eq!(
            decode(&raw, DataType::Int32, Endianness::Little, scaling),
            [16_777_216.0]
        );
    }

    #[test]
    fn floats_and_bytes_decode() {
        let raw = (-0.5f64).to_be_bytes();
        assert_eq!(
            decode(&raw, DataType::Float64, Endianness::Big, IDENTITY),
            [-0.5]
        );
        assert_eq!(
            decode(&[0xFF], DataType::Int8, Endianness::Little, IDENTITY),
            [-1.0]
        );
        assert_eq!(
            decode(&[0xFF], DataType::Uint8, Endianness::Big, IDENTITY),
            [255.0]
        );
    }

    #[test]
    fn unsupported_codes_are_named() {
        let err = DataType::from_code(32).unwrap_err();
        assert_eq!(
            err,
            NiftiError::UnsupportedDatatype {
                code: 32,
                name: "complex64"
            }
        );
        assert!(err.to_string().contains("32 (complex64)"));
        let err = DataType::from_code(1024).unwrap_err();
        assert!(err.to_string().contains("1024 (int64)"), "{err}");
    }

    #[test]
    fn codes_round_trip() {
        for code in [2, 256, 4, 512, 8, 768, 16, 64] {
            assert_eq!(DataType::from_code(code).map(DataType::code), Ok(code));
        }
        assert_eq!(DataType::Float64.bitpix(), 64);
    }
}
