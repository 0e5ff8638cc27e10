//! Everything that can make a NIfTI-1 file unreadable or unwritable, each with the offending value.

use thiserror::Error;

/// Why a NIfTI-1 file could not be read or written.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NiftiError {
    /// The input has no bytes at all.
    #[error("the file is empty (0 bytes), not a NIfTI-1 image")]
    Empty,

    /// The first four bytes are not `sizeof_hdr = 348` in either byte order.
    #[error(
        "not a NIfTI-1 file: it starts with bytes {}, but a NIfTI-1 header starts with \
         sizeof_hdr = 348",
        hex(first_bytes)
    )]
    NotNifti {
        /// The file's first (up to four) bytes.
        first_bytes: Vec<u8>,
    },

    /// `sizeof_hdr` is 540: a NIfTI-2 header.
    #[error("NIfTI-2 is not supported (sizeof_hdr = 540); save the image as NIfTI-1")]
    Nifti2Unsupported,

    /// The file (after decompression) ends inside the 348-byte header.
    #[error("file ends after {len} bytes, inside the 348-byte NIfTI-1 header")]
    TruncatedHeader {
        /// Number of (decompressed) bytes the file holds.
        len: usize,
    },

    /// Magic `ni1\0`: the header of a `.hdr`/`.img` pair, whose voxels live in another file.
    #[error(
        "magic 'ni1' is a header of a .hdr/.img pair, not supported; convert the pair to a \
         single .nii or .nii.gz file"
    )]
    HeaderPairUnsupported,

    /// Magic is neither `n+1\0` nor `ni1\0`.
    #[error(
        "bad NIfTI-1 magic {}: expected 'n+1' followed by a zero byte",
        hex(magic)
    )]
    BadMagic {
        /// The four magic bytes at offset 344.
        magic: [u8; 4],
    },

    /// A datatype code this reader does not decode (complex, RGB, 64-bit integers, …).
    #[error(
        "NIfTI datatype {code} ({name}) is not supported; supported are uint8, int8, int16, \
         uint16, int32, uint32, float32 and float64"
    )]
    UnsupportedDatatype {
        /// The `datatype` header field.
        code: i16,
        /// The standard's name for it, or "unknown".
        name: &'static str,
    },

    /// `bitpix` disagrees with the datatype, so the voxel size on disk is ambiguous.
    #[error("bitpix is {bitpix} but datatype {datatype} has {expected} bits per voxel")]
    BitpixMismatch {
        /// The `bitpix` header field.
        bitpix: i16,
        /// Name of the datatype.
        datatype: &'static str,
        /// Bits per voxel of that datatype.
        expected: i16,
    },

    /// `dim[0]` is 1 or 2: not a volume.
    #[error("{ndim}-D image, need a 3-D volume")]
    NotAVolume {
        /// The `dim[0]` header field.
        ndim: i16,
    },

    /// `dim[0]` is 5, 6 or 7: more than one volume's worth of axes.
    #[error("{ndim}-D image; only 3-D volumes (or 4-D with a single volume) are supported")]
    TooManyAxes {
        /// The `dim[0]` header field.
        ndim: i16,
    },

    /// `dim[0]` is outside the standard's 1..=7.
    #[error("dim[0] = {ndim} is not a valid number of dimensions (NIfTI allows 1 to 7)")]
    InvalidDimCount {
        /// The `dim[0]` header field.
        ndim: i16,
    },

    /// A 4-D image holds more than one volume (a time series).
    #[error("4-D image with {volumes} volumes; only a single 3-D volume is supported")]
    MultipleVolumes {
        /// The `dim[4]` header field.
        volumes: i16,
    },

    /// One of the used dimensions is zero or negative.
    #[error("NIfTI dimension {axis} is {value}, must be at least 1")]
    InvalidDim {
        /// Index into `dim` (1 = i, 2 = j, 3 = k, 4 = t).
        axis: usize,
        /// The value of `dim[axis]`.
        value: i16,
    },

    /// The volume holds more voxels than the configured limit.
    #[error("volume of {voxels} voxels exceeds the limit of {limit} voxels")]
    TooManyVoxels {
        /// Voxels the header declares.
        voxels: u64,
        /// `ReadOptions::max_voxels`.
        limit: usize,
    },

    /// `vox_offset` is NaN, infinite or not a whole number of bytes.
    #[error("vox_offset {vox_offset} is not a whole, finite number of bytes")]
    VoxOffsetInvalid {
        /// The `vox_offset` header field.
        vox_offset: f32,
    },

    /// `vox_offset` points into the 352-byte header of a single-file NIfTI-1.
    #[error("vox_offset {vox_offset} is below 352, inside the header of a single-file NIfTI-1")]
    VoxOffsetTooSmall {
        /// The `vox_offset` header field.
        vox_offset: f32,
    },

    /// `vox_offset` leaves more header extension bytes than this reader decompresses.
    #[error("vox_offset {vox_offset} exceeds the largest supported offset of {limit} bytes")]
    VoxOffsetTooLarge {
        /// The `vox_offset` header field.
        vox_offset: f32,
        /// The largest offset accepted.
        limit: usize,
    },

    /// `vox_offset` lies beyond the end of the (decompressed) file.
    #[error("vox_offset {vox_offset} is beyond the end of the file ({file_len} bytes)")]
    VoxOffsetBeyondEnd {
        /// The `vox_offset` header field.
        vox_offset: f32,
        /// Length of the (decompressed) file in bytes.
        file_len: usize,
    },

    /// The file ends before all voxels the header declares.
    #[error("file ends after {have} of {need} voxel bytes")]
    TruncatedData {
        /// Voxel bytes present after `vox_offset`.
        have: usize,
        /// Voxel bytes the header declares.
        need: usize,
    },

    /// The gzip stream is damaged (truncated, bad checksum, not gzip after all).
    #[error("gzip stream is corrupt after {after_bytes} decompressed bytes: {message}")]
    Gzip {
        /// Decompressed bytes obtained before the failure.
        after_bytes: usize,
        /// The decompressor's description of the failure.
        message: String,
    },

    /// The gzip stream decompresses to more than the header declares.
    #[error(
        "gzip stream decompresses to more than the {declared} bytes the header declares; \
         refusing it as a possible gzip bomb"
    )]
    GzipTrailingData {
        /// `vox_offset` plus the declared voxel bytes.
        declared: usize,
    },

    /// No finite voxel-to-world affine can be derived from sform, qform or pixdim.
    #[error("NaN in the affine: {detail}")]
    NonFiniteAffine {
        /// Which of the three sources was tried and why each failed.
        detail: String,
    },

    /// A label volume to write does not have the source header's voxel count.
    #[error("label volume has {labels} voxels but the source header's grid {dims:?} has {voxels}")]
    LabelCountMismatch {
        /// `labels.len()`.
        labels: usize,
        /// The source grid `[ni, nj, nk]`.
        dims: [usize; 3],
        /// `ni * nj * nk`.
        voxels: usize,
    },

    /// Compressing the written file failed.
    #[error("gzip compression of the written NIfTI failed: {message}")]
    Compress {
        /// The compressor's description of the failure.
        message: String,
    },
}

/// `[0x89, 0x50]` → `"89 50"`.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
