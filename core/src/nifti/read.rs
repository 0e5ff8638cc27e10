//! Reading a whole NIfTI-1 volume: every size is checked against the header and the limits
//! before the one allocation the voxels need.

use super::datatype;
use super::error::NiftiError;
use super::gzip::{is_gzip, Gunzip};
use super::header::{self, Header, MIN_VOX_OFFSET};
use super::qform;
use crate::volume::Volume;

/// Largest `vox_offset` accepted in a `.nii.gz`: header extensions beyond 16 MiB would all
/// be inflated just to be skipped, which is a bomb of its own.
pub const MAX_GZIP_VOX_OFFSET: usize = MIN_VOX_OFFSET + (16 << 20);

/// Limits applied while reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// Largest number of voxels accepted (default 2²⁸ ≈ 268 M, over 1 GB of f32).
    pub max_voxels: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_voxels: 1 << 28,
        }
    }
}

/// A decoded NIfTI-1 file.
#[derive(Debug, Clone, PartialEq)]
pub struct NiftiImage {
    /// The header as stored, for writing results back on the same grid.
    pub header: Header,
    /// Scaled voxel values, `dims[0] * dims[1] * dims[2]` f32 in disk order (i fastest).
    pub volume: Volume,
    /// Plain-English notes on repaired or ignored header fields (also logged as warnings).
    pub warnings: Vec<String>,
}

/// Decodes a `.nii` or `.nii.gz` (told apart by the gzip magic, not the name) from memory.
pub fn read_nifti(bytes: &[u8], options: &ReadOptions) -> Result<NiftiImage, NiftiError> {
    let (header, mut warnings, hu) = if is_gzip(bytes) {
        read_gzip(bytes, options)?
    } else {
        read_plain(bytes, options)?
    };

    let resolved = qform::resolve(&header)?;
    let volume = Volume {
        dims: header.dims3(),
        spacing_mm: header.spacing_mm(),
        affine: resolved.affine,
        hu,
    };
    header::remove_repeats(&mut warnings);
    log_warnings(&warnings);
    Ok(NiftiImage {
        header,
        volume,
        warnings,
    })
}

/// Decodes only the header of a `.nii` or `.nii.gz`, inflating at most its first 352 bytes.
pub fn read_header(bytes: &[u8]) -> Result<Header, NiftiError> {
    let (header, warnings) = if is_gzip(bytes) {
        parse_inflated(&Gunzip::new(bytes).read_up_to(MIN_VOX_OFFSET)?)?
    } else {
        header::parse(bytes)?
    };
    log_warnings(&warnings);
    Ok(header)
}

/// Parses the first inflated bytes of a `.nii.gz`; an empty stream is a truncated header
/// there, since the file itself was not empty.
fn parse_inflated(head: &[u8]) -> Result<(Header, Vec<String>), NiftiError> {
    if head.is_empty() {
        return Err(NiftiError::TruncatedHeader { len: 0 });
    }
    header::parse(head)
}

fn log_warnings(warnings: &[String]) {
    for warning in warnings {
        tracing::warn!("NIfTI header: {warning}");
    }
}

/// Voxel bytes the header declares, refused above the voxel limit.
fn declared_voxel_bytes(header: &Header, options: &ReadOptions) -> Result<usize, NiftiError> {
    let voxels = header.voxel_count();
    let too_many = NiftiError::TooManyVoxels {
        voxels,
        limit: options.max_voxels,
    };
    if voxels > options.max_voxels as u64 {
        return Err(too_many);
    }
    voxels
        .checked_mul(header.datatype.bytes_per_voxel() as u64)
        .and_then(|bytes| usize::try_from(bytes).ok())
        .ok_or(too_many)
}

/// The header, its warnings and the scaled voxels.
type Parts = (Header, Vec<String>, Vec<f32>);

/// Inflated bytes converted at a time: small enough to stay in cache, a multiple of every
/// voxel size.
const CHUNK_BYTES: usize = 1 << 18;

fn read_plain(bytes: &[u8], options: &ReadOptions) -> Result<Parts, NiftiError> {
    let (header, mut warnings) = header::parse(bytes)?;
    let need = declared_voxel_bytes(&header, options)?;
    let offset = header.data_offset();
    if offset > bytes.len() {
        return Err(NiftiError::VoxOffsetBeyondEnd {
            vox_offset: header.vox_offset,
            file_len: bytes.len(),
        });
    }

    let available = bytes.len() - offset;
    if available < need {
        return Err(NiftiError::TruncatedData {
            have: available,
            need,
        });
    }
    if available > need {
        warnings.push(format!(
            "{} bytes after the last voxel are ignored",
            available - need
        ));
    }
    let (scaling, _) = header.scaling();
    let hu = datatype::decode(
        &bytes[offset..offset + need],
        header.datatype,
        header.endianness,
        scaling,
    );
    Ok((header, warnings, hu))
}

fn read_gzip(bytes: &[u8], options: &ReadOptions) -> Result<Parts, NiftiError> {
    let mut stream = Gunzip::new(bytes);
    let head = stream.read_up_to(MIN_VOX_OFFSET)?;
    let (header, warnings) = parse_inflated(&head)?;
    let need = declared_voxel_bytes(&header, options)?;

    let offset = header.data_offset();
    if offset > MAX_GZIP_VOX_OFFSET {
        return Err(NiftiError::VoxOffsetTooLarge {
            vox_offset: header.vox_offset,
            limit: MAX_GZIP_VOX_OFFSET,
        });
    }
    let extension = offset - head.len();
    if head.len() < MIN_VOX_OFFSET || stream.skip(extension)? < extension {
        return Err(NiftiError::VoxOffsetBeyondEnd {
            vox_offset: header.vox_offset,
            file_len: stream.produced(),
        });
    }

    let (scaling, _) = header.scaling();
    let (datatype, endianness) = (header.datatype, header.endianness);
    let mut hu = Vec::with_capacity(need / datatype.bytes_per_voxel());
    let have = stream.read_chunks(need, CHUNK_BYTES, |chunk| {
        datatype::decode_into(chunk, datatype, endianness, scaling, &mut hu)
    })?;
    if have < need {
        return Err(NiftiError::TruncatedData { have, need });
    }
    stream.finish(offset.saturating_add(need))?;
    Ok((header, warnings, hu))
}
