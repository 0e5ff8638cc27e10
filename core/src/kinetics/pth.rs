//! A reader of PyTorch checkpoints (`torch.save` of a state dict) from bytes: the ZIP
//! container of PyTorch ≥ 1.6 and the legacy pickle stream of earlier versions (torchvision's
//! Kinetics-400 `r3d_18-b3b3357e.pth` dates from 2019 and may be either).
//!
//! Only what a state dict needs is understood: dictionaries of tensors whose storages are
//! float or integer arrays. The pickle machine here builds plain values and never runs code.

use std::collections::BTreeMap;
use std::io::Read;

/// Why a checkpoint could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PthError {
    /// Neither a ZIP archive nor a legacy pickle stream.
    #[error("not a PyTorch checkpoint: {0}")]
    NotACheckpoint(String),
    /// The ZIP container is malformed.
    #[error("PyTorch checkpoint's ZIP container is corrupt: {0}")]
    Zip(String),
    /// The pickle stream is malformed or uses something a state dict does not.
    #[error("PyTorch checkpoint's pickle is unreadable at byte {offset}: {problem}")]
    Pickle {
        /// Offset in the pickle stream.
        offset: usize,
        /// What went wrong.
        problem: String,
    },
    /// A storage is missing or shorter than its tensors need.
    #[error("PyTorch checkpoint storage {key}: {problem}")]
    Storage {
        /// The storage's key.
        key: String,
        /// What went wrong.
        problem: String,
    },
    /// A tensor's element type cannot be read as float.
    #[error("tensor {name} has element type {dtype}, expected a float type")]
    NotFloat {
        /// The tensor's key.
        name: String,
        /// Its storage type.
        dtype: String,
    },
}

/// Element type of a storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageType {
    /// `torch.FloatStorage`.
    F32,
    /// `torch.DoubleStorage`.
    F64,
    /// `torch.HalfStorage`.
    F16,
    /// `torch.BFloat16Storage`.
    BF16,
    /// `torch.LongStorage`.
    I64,
    /// `torch.IntStorage`.
    I32,
    /// `torch.ShortStorage`.
    I16,
    /// `torch.CharStorage`.
    I8,
    /// `torch.ByteStorage`.
    U8,
    /// `torch.BoolStorage`.
    Bool,
}

impl StorageType {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Self::F32,
            "DoubleStorage" => Self::F64,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }
}

/// One tensor of a checkpoint: where its values are, not yet read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PthTensor {
    /// Element type of its storage.
    pub dtype: StorageType,
    /// Extents, outermost first.
    pub shape: Vec<usize>,
    /// Element strides.
    pub stride: Vec<usize>,
    /// Offset of the first element in the storage, in elements.
    pub offset: usize,
    /// Key of the storage.
    pub storage: String,
}

/// A parsed checkpoint: its tensors by dotted key, and the raw storages.
#[derive(Debug)]
pub struct Checkpoint<'a> {
    /// Tensors by key (`"layer1.0.conv1.0.weight"`), nested dictionaries joined by dots.
    pub tensors: BTreeMap<String, PthTensor>,
    storages: BTreeMap<String, &'a [u8]>,
}

impl<'a> Checkpoint<'a> {
    /// Parses a checkpoint held in memory.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PthError> {
        if bytes.starts_with(b"PK\x03\x04") {
            parse_zip(bytes)
        } else if bytes.first() == Some(&0x80) {
            parse_legacy(bytes)
        } else {
            Err(PthError::NotACheckpoint(
                "it starts with neither a ZIP signature nor a pickle protocol marker".into(),
            ))
        }
    }

    /// The values of tensor `name` as row-major f32 (f64, f16 and bf16 are converted).
    pub fn read_f32(&self, name: &str, tensor: &PthTensor) -> Result<Vec<f32>, PthError> {
        let convert: fn(&[u8]) -> f32 = match tensor.dtype {
            StorageType::F32 => |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            StorageType::F64 => {
                |b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
            StorageType::F16 => |b| half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            StorageType::BF16 => |b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            other => {
                return Err(PthError::NotFloat {
                    name: name.to_string(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        let storage_error = |problem: String| PthError::Storage {
            key: tensor.storage.clone(),
            problem,
        };
        let data = self
            .storages
            .get(&tensor.storage)
            .ok_or_else(|| storage_error("not in the checkpoint".into()))?;

        let size = tensor.dtype.size();
        let elements = data.len() / size;
        let count: usize = tensor.shape.iter().product();
        if tensor.stride.len() != tensor.shape.len() {
            return Err(storage_error(format!(
                "tensor {name} has {} strides for {} axes",
                tensor.stride.len(),
                tensor.shape.len()
            )));
        }
        // The last element reached, checked before any is read.
        let last = tensor
            .shape
            .iter()
            .zip(&tensor.stride)
            .try_fold(tensor.offset, |acc, (&n, &s)| {
                acc.checked_add(n.saturating_sub(1).checked_mul(s)?)
            });
        match last {
            Some(last) if count == 0 || last < elements => {}
            _ => {
                return Err(storage_error(format!(
                    "tensor {name} (shape {:?}, stride {:?}, offset {}) reaches past the \
                     storage's {elements} elements",
                    tensor.shape, tensor.stride, tensor.offset
                )))
            }
        }

        let mut values = Vec::with_capacity(count);
        let mut index = vec![0usize; tensor.shape.len()];
        for _ in 0..count {
            let element: usize = tensor.offset
                + index
                    .iter()
                    .zip(&tensor.stride)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            values.push(convert(&data[element * size..(element + 1) * size]));
            for axis in (0..index.len()).rev() {
                index[axis] += 1;
                if index[axis] < tensor.shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        Ok(values)
    }
}

// ---------------------------------------------------------------------------------------
// Containers

/// PyTorch ≥ 1.6: a ZIP archive `<name>/data.pkl` + `<name>/data/<key>` (stored, 64-byte
/// aligned).
fn parse_zip(bytes: &[u8]) -> Result<Checkpoint<'_>, PthError> {
    let entries = zip_entries(bytes)?;
    let pickle_name = entries
        .keys()
        .find(|name| name.ends_with("data.pkl"))
        .ok_or_else(|| PthError::NotACheckpoint("the ZIP archive has no data.pkl".into()))?
        .clone();
    let prefix = &pickle_name[..pickle_name.len() - "data.pkl".len()];
    if let Some(order) = entries.get(&format!("{prefix}byteorder")) {
        let order = zip_read(bytes, order)?;
        if order.as_slice() != b"little" {
            return Err(PthError::NotACheckpoint(format!(
                "byte order {:?} is not supported",
                String::from_utf8_lossy(&order)
            )));
        }
    }
    let pickle = zip_read(bytes, &entries[&pickle_name])?;
    let root = Unpickler::new(&pickle).run()?;
    let tensors = state_dict(root)?;

    let mut storages = BTreeMap::new();
    for tensor in tensors.values() {
        if storages.contains_key(&tensor.storage) {
            continue;
        }
        let entry = entries
            .get(&format!("{prefix}data/{}", tensor.storage))
            .ok_or_else(|| PthError::Storage {
                key: tensor.storage.clone(),
                problem: "not in the archive".into(),
            })?;
        if entry.method != 0 {
            return Err(PthError::Storage {
                key: tensor.storage.clone(),
                problem: format!(
                    "compressed (ZIP method {}); torch.save stores storages",
                    entry.method
                ),
            });
        }
        storages.insert(tensor.storage.clone(), zip_stored(bytes, entry)?);
    }
    Ok(Checkpoint { tensors, storages })
}

/// PyTorch < 1.6: five pickles in a row (magic number, protocol version, system info, the
/// object, the list of storage keys), then each storage as a little-endian `u64` element
/// count followed by its bytes, in the order of the key list.
fn parse_legacy(bytes: &[u8]) -> Result<Checkpoint<'_>, PthError> {
    const MAGIC: i128 = 0x1950a86a20f9469cfc6c;
    let mut offset = 0;
    let mut next = |what: &str| -> Result<Value, PthError> {
        let mut machine = Unpickler::new(&bytes[offset..]);
        let value = machine.run().map_err(|err| match err {
            PthError::Pickle {
                offset: at,
                problem,
            } => PthError::Pickle {
                offset: offset + at,
                problem: format!("{what}: {problem}"),
            },
            other => other,
        })?;
        offset += machine.pos;
        Ok(value)
    };
    match next("magic number")? {
        Value::Int(magic) if magic == MAGIC => {}
        _ => {
            return Err(PthError::NotACheckpoint(
                "the legacy magic number is wrong".into(),
            ))
        }
    }
    next("protocol version")?;
    next("system info")?;
    let root = next("state dict")?;
    let keys = match next("storage keys")? {
        Value::List(keys) => keys,
        _ => {
            return Err(PthError::NotACheckpoint(
                "the storage key list is not a list".into(),
            ))
        }
    };
    let tensors = state_dict(root)?;
    let types: BTreeMap<&str, StorageType> = tensors
        .values()
        .map(|t| (t.storage.as_str(), t.dtype))
        .collect();

    let mut storages = BTreeMap::new();
    for key in keys {
        let Value::Str(key) = key else {
            return Err(PthError::NotACheckpoint(
                "a storage key is not a string".into(),
            ));
        };
        let storage_error = |problem: String| PthError::Storage {
            key: key.clone(),
            problem,
        };
        let count = bytes
            .get(offset..offset + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .ok_or_else(|| storage_error("the file ends before its size".into()))?;
        offset += 8;
        // A storage no tensor uses still has to be skipped; assume 4-byte elements only if
        // nothing says otherwise (state dicts have no orphan storages in practice).
        let size = types.get(key.as_str()).map_or(4, |t| t.size()) as u64;
        let len = count
            .checked_mul(size)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= bytes.len() - offset)
            .ok_or_else(|| {
                storage_error(format!(
                    "{count} elements of {size} bytes do not fit in the {} bytes left",
                    bytes.len() - offset
                ))
            })?;
        storages.insert(key.clone(), &bytes[offset..offset + len]);
        offset += len;
    }
    Ok(Checkpoint { tensors, storages })
}

struct ZipEntry {
    method: u16,
    compressed: usize,
    uncompressed: usize,
    local_header: usize,
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The central directory (with ZIP64 records, which PyTorch writes for large archives).
fn zip_entries(b: &[u8]) -> Result<BTreeMap<String, ZipEntry>, PthError> {
    let zip_error = |what: &str| PthError::Zip(what.to_string());
    let search_from = b.len().saturating_sub(22 + 65_535);
    let eocd = (search_from..=b.len().saturating_sub(22))
        .rev()
        .find(|&at| le32(b, at) == Some(0x0605_4b50))
        .ok_or_else(|| zip_error("no end-of-central-directory record (truncated file?)"))?;
    let mut count = le16(b, eocd + 10).map(usize::from);
    let mut dir = le32(b, eocd + 16).map(|v| v as usize);
    if count == Some(0xFFFF) || dir == Some(0xFFFF_FFFF) {
        let locator = eocd
            .checked_sub(20)
            .filter(|&at| le32(b, at) == Some(0x0706_4b50));
        let record = locator
            .and_then(|at| le64(b, at + 8))
            .and_then(|at| usize::try_from(at).ok())
            .filter(|&at| le32(b, at) == Some(0x0606_4b50))
            .ok_or_else(|| zip_error("the ZIP64 end-of-central-directory record is missing"))?;
        count = le64(b, record + 32).and_then(|v| usize::try_from(v).ok());
        dir = le64(b, record + 48).and_then(|v| usize::try_from(v).ok());
    }
    let (count, mut at) = count
        .zip(dir)
        .ok_or_else(|| zip_error("bad directory record"))?;

    let mut entries = BTreeMap::new();
    for _ in 0..count {
        if le32(b, at) != Some(0x0201_4b50) {
            return Err(zip_error("a central directory entry is corrupt"));
        }
        let field = |off: usize| le32(b, at + off).map(|v| v as usize);
        let (Some(method), Some(mut compressed), Some(mut uncompressed)) =
            (le16(b, at + 10), field(20), field(24))
        else {
            return Err(zip_error("a central directory entry is cut off"));
        };
        let lengths = (le16(b, at + 28), le16(b, at + 30), le16(b, at + 32));
        let (Some(name_len), Some(extra_len), Some(comment_len), Some(mut local_header)) =
            (lengths.0, lengths.1, lengths.2, field(42))
        else {
            return Err(zip_error("a central directory entry is cut off"));
        };
        let name_start = at + 46;
        let name = b
            .get(name_start..name_start + name_len as usize)
            .ok_or_else(|| zip_error("a file name is cut off"))?;
        let name = String::from_utf8_lossy(name).into_owned();

        // ZIP64 extra field: the 64-bit values replace, in order, those set to 0xFFFFFFFF.
        let extra_start = name_start + name_len as usize;
        let extra = b
            .get(extra_start..extra_start + extra_len as usize)
            .unwrap_or(&[]);
        let mut e = 0;
        while e + 4 <= extra.len() {
            let (id, size) = (
                le16(extra, e).unwrap_or(0),
                le16(extra, e + 2).unwrap_or(0) as usize,
            );
            if id == 0x0001 {
                let mut v = e + 4;
                for value in [&mut uncompressed, &mut compressed, &mut local_header] {
                    if *value == 0xFFFF_FFFF {
                        *value = le64(extra, v)
                            .and_then(|x| usize::try_from(x).ok())
                            .unwrap_or(usize::MAX);
                        v += 8;
                    }
                }
            }
            e += 4 + size;
        }
        entries.insert(
            name,
            ZipEntry {
                method,
                compressed,
                uncompressed,
                local_header,
            },
        );
        at = extra_start + extra_len as usize + comment_len as usize;
    }
    Ok(entries)
}

/// An entry's bytes as stored (no decompression).
fn zip_stored<'a>(b: &'a [u8], entry: &ZipEntry) -> Result<&'a [u8], PthError> {
    let at = entry.local_header;
    if le32(b, at) != Some(0x0403_4b50) {
        return Err(PthError::Zip(format!("no local header at byte {at}")));
    }
    let (name_len, extra_len) = (le16(b, at + 26), le16(b, at + 28));
    let start = name_len
        .zip(extra_len)
        .map(|(n, e)| at + 30 + n as usize + e as usize)
        .ok_or_else(|| PthError::Zip("a local header is cut off".into()))?;
    start
        .checked_add(entry.compressed)
        .and_then(|end| b.get(start..end))
        .ok_or_else(|| {
            PthError::Zip(format!(
                "an entry of {} bytes at byte {start} runs past the end of the {}-byte file",
                entry.compressed,
                b.len()
            ))
        })
}

/// An entry's content, inflated if it is deflate-compressed (small text entries may be).
fn zip_read(b: &[u8], entry: &ZipEntry) -> Result<Vec<u8>, PthError> {
    let raw = zip_stored(b, entry)?;
    match entry.method {
        0 => Ok(raw.to_vec()),
        8 => {
            let mut out = Vec::with_capacity(entry.uncompressed.min(64 << 20));
            flate2::read::DeflateDecoder::new(raw)
                .take(entry.uncompressed as u64)
                .read_to_end(&mut out)
                .map_err(|err| PthError::Zip(format!("inflating an entry: {err}")))?;
            Ok(out)
        }
        method => Err(PthError::Zip(format!(
            "unsupported compression method {method}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Pickle

/// The values a state-dict pickle builds.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    Storage {
        dtype: StorageType,
        key: String,
    },
    Tensor(PthTensor),
    /// An object this reader does not model (the result of an unknown callable).
    Opaque(String),
    Mark,
}

/// Most values the memo may hand out in copies. A real state dict recalls a few per tensor;
/// the limit stops a crafted pickle that nests recalls of recalls from growing exponentially.
const MAX_RECALLED_VALUES: usize = 10_000_000;

struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: BTreeMap<u32, Value>,
    recalled: usize,
}

impl Value {
    /// Number of values in this one, itself included.
    fn count(&self) -> usize {
        1 + match self {
            Value::Tuple(items) | Value::List(items) => items.iter().map(Value::count).sum(),
            Value::Dict(pairs) => pairs.iter().map(|(k, v)| k.count() + v.count()).sum(),
            _ => 0,
        }
    }
}

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            stack: Vec::new(),
            memo: BTreeMap::new(),
            recalled: 0,
        }
    }

    fn error(&self, problem: impl Into<String>) -> PthError {
        PthError::Pickle {
            offset: self.pos,
            problem: problem.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PthError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len());
        let end = end.ok_or_else(|| self.error(format!("{n} bytes needed, the stream ends")))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn uint(&mut self, n: usize) -> Result<u64, PthError> {
        let bytes = self.take(n)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn pop(&mut self) -> Result<Value, PthError> {
        self.stack
            .pop()
            .ok_or_else(|| self.error("pop from an empty stack"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, PthError> {
        let mark = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or_else(|| self.error("no MARK on the stack"))?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    fn text(&mut self, n: usize) -> Result<Value, PthError> {
        let bytes = self.take(n)?;
        Ok(Value::Str(String::from_utf8_lossy(bytes).into_owned()))
    }

    fn line(&mut self) -> Result<String, PthError> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.error("unterminated line"))?;
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(line)
    }

    fn run(&mut self) -> Result<Value, PthError> {
        loop {
            let op = self.take(1)?[0];
            match op {
                0x80 => {
                    self.take(1)?;
                }
                0x95 => {
                    self.take(8)?;
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Value::Mark),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.uint(1)?;
                    self.stack.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.stack.push(Value::Int(v.into()));
                }
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.stack.push(Value::Int(v.into()));
                }
                0x8a => {
                    let n = self.uint(1)? as usize;
                    if n > 16 {
                        return Err(self.error(format!("a {n}-byte integer")));
                    }
                    let bytes = self.take(n)?;
                    let mut v: i128 = 0;
                    for (i, &b) in bytes.iter().enumerate() {
                        v |= i128::from(b) << (8 * i);
                    }
                    if n > 0 && n < 16 && bytes[n - 1] & 0x80 != 0 {
                        v -= 1i128 << (8 * n);
                    }
                    self.stack.push(Value::Int(v));
                }
                b'G' => {
                    let bytes = self.take(8)?;
                    let v = f64::from_be_bytes(bytes.try_into().unwrap_or([0; 8]));
                    self.stack.push(Value::Float(v));
                }
                b'X' => {
                    let n = self.uint(4)? as usize;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = self.uint(1)? as usize;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = self.uint(8)?;
                    let n = usize::try_from(n).map_err(|_| self.error("string too long"))?;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                b'U' => {
                    let n = self.uint(1)? as usize;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                b'T' => {
                    let n = self.uint(4)? as usize;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                b'C' => {
                    let n = self.uint(1)? as usize;
                    let v = self.take(n)?.to_vec();
                    self.stack.push(Value::Bytes(v));
                }
                b'B' => {
                    let n = self.uint(4)? as usize;
                    let v = self.take(n)?.to_vec();
                    self.stack.push(Value::Bytes(v));
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(module, name));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(Value::Global(m, n)),
                        _ => return Err(self.error("STACK_GLOBAL without two strings")),
                    }
                }
                b'q' => {
                    let key = self.uint(1)? as u32;
                    self.memoize(key)?;
                }
                b'r' => {
                    let key = self.uint(4)? as u32;
                    self.memoize(key)?;
                }
                0x94 => {
                    let key = self.memo.len() as u32;
                    self.memoize(key)?;
                }
                b'h' => {
                    let key = self.uint(1)? as u32;
                    self.recall(key)?;
                }
                b'j' => {
                    let key = self.uint(4)? as u32;
                    self.recall(key)?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85 => {
                    let a = self.pop()?;
                    self.stack.push(Value::Tuple(vec![a]));
                }
                0x86 => {
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.stack.push(Value::Tuple(vec![a, b]));
                }
                0x87 => {
                    let c = self.pop()?;
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.stack.push(Value::Tuple(vec![a, b, c]));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items).ok_or_else(|| self.error("DICT with an odd count"))?;
                    self.stack.push(Value::Dict(pairs));
                }
                b'a' => {
                    let item = self.pop()?;
                    match self.stack.last_mut() {
                        Some(Value::List(list)) => list.push(item),
                        _ => return Err(self.error("APPEND to a non-list")),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.stack.last_mut() {
                        Some(Value::List(list)) => list.extend(items),
                        _ => return Err(self.error("APPENDS to a non-list")),
                    }
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    match self.stack.last_mut() {
                        Some(Value::Dict(dict)) => dict.push((key, value)),
                        _ => return Err(self.error("SETITEM on a non-dict")),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let new =
                        pairs(items).ok_or_else(|| self.error("SETITEMS with an odd count"))?;
                    match self.stack.last_mut() {
                        Some(Value::Dict(dict)) => dict.extend(new),
                        _ => return Err(self.error("SETITEMS on a non-dict")),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let value = self.reduce(callable, args)?;
                    self.stack.push(value);
                }
                0x81 => {
                    let _args = self.pop()?;
                    let class = self.pop()?;
                    self.stack.push(Value::Opaque(format!("{class:?}")));
                }
                // BUILD sets an object's state; the state of an OrderedDict is its
                // `_metadata` (module versions), which a state dict reader does not need.
                b'b' => {
                    self.pop()?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = self.persistent_load(pid)?;
                    self.stack.push(storage);
                }
                other => return Err(self.error(format!("unsupported opcode 0x{other:02x}"))),
            }
        }
    }

    fn memoize(&mut self, key: u32) -> Result<(), PthError> {
        let top = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| self.error("memoize an empty stack"))?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn recall(&mut self, key: u32) -> Result<(), PthError> {
        let value = self
            .memo
            .get(&key)
            .ok_or_else(|| self.error(format!("memo {key} unset")))?;
        self.recalled = self.recalled.saturating_add(value.count());
        if self.recalled > MAX_RECALLED_VALUES {
            return Err(self.error(format!(
                "the memo handed out over {MAX_RECALLED_VALUES} values: not a state dict"
            )));
        }
        let value = value.clone();
        self.stack.push(value);
        Ok(())
    }

    /// `('storage', torch.<Type>Storage, key, location, numel[, view_metadata])`.
    fn persistent_load(&self, pid: Value) -> Result<Value, PthError> {
        let Value::Tuple(items) = pid else {
            return Err(self.error("a persistent id that is not a tuple"));
        };
        match items.as_slice() {
            [Value::Str(kind), Value::Global(_, type_name), Value::Str(key), ..]
                if kind == "storage" =>
            {
                let dtype = StorageType::from_name(type_name)
                    .ok_or_else(|| self.error(format!("unsupported storage type {type_name}")))?;
                Ok(Value::Storage {
                    dtype,
                    key: key.clone(),
                })
            }
            _ => Err(self.error("a persistent id that is not a storage")),
        }
    }

    fn reduce(&self, callable: Value, args: Value) -> Result<Value, PthError> {
        let Value::Global(module, name) = &callable else {
            return Ok(Value::Opaque(format!("{callable:?}")));
        };
        let Value::Tuple(args) = args else {
            return Err(self.error(format!("{module}.{name} called without a tuple")));
        };
        match (module.as_str(), name.as_str()) {
            ("collections", "OrderedDict") => Ok(Value::Dict(Vec::new())),
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
                let (storage, offset) = (args.first(), args.get(1));
                let (shape, stride) = (args.get(2), args.get(3));
                let (
                    Some(Value::Storage { dtype, key }),
                    Some(Value::Int(offset)),
                    Some(Value::Tuple(shape)),
                    Some(Value::Tuple(stride)),
                ) = (storage, offset, shape, stride)
                else {
                    return Err(self.error(format!("{name} with unexpected arguments")));
                };
                let dims = |values: &[Value]| -> Option<Vec<usize>> {
                    values
                        .iter()
                        .map(|v| match v {
                            Value::Int(n) => usize::try_from(*n).ok(),
                            _ => None,
                        })
                        .collect()
                };
                let (Some(shape), Some(stride), Ok(offset)) =
                    (dims(shape), dims(stride), usize::try_from(*offset))
                else {
                    return Err(self.error("a tensor with a negative or non-integer size"));
                };
                Ok(Value::Tensor(PthTensor {
                    dtype: *dtype,
                    shape,
                    stride,
                    offset,
                    storage: key.clone(),
                }))
            }
            ("torch._utils", "_rebuild_parameter") => args
                .into_iter()
                .next()
                .ok_or_else(|| self.error("_rebuild_parameter without data")),
            _ => Ok(Value::Opaque(format!("{module}.{name}"))),
        }
    }
}

fn pairs(items: Vec<Value>) -> Option<Vec<(Value, Value)>> {
    if items.len() % 2 != 0 {
        return None;
    }
    let mut iter = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (iter.next(), iter.next()) {
        out.push((k, v));
    }
    Some(out)
}

/// Tensors of a (possibly nested) dictionary, keys joined by dots; other values are skipped.
fn state_dict(root: Value) -> Result<BTreeMap<String, PthTensor>, PthError> {
    fn walk(prefix: &str, value: Value, out: &mut BTreeMap<String, PthTensor>) {
        match value {
            Value::Tensor(tensor) => {
                out.insert(prefix.to_string(), tensor);
            }
            Value::Dict(entries) => {
                for (key, value) in entries {
                    let key = match key {
                        Value::Str(s) => s,
                        Value::Int(i) => i.to_string(),
                        _ => continue,
                    };
                    let name = if prefix.is_empty() {
                        key
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&name, value, out);
                }
            }
            _ => {}
        }
    }
    if !matches!(root, Value::Dict(_)) {
        return Err(PthError::NotACheckpoint(
            "its pickle is not a dictionary".into(),
        ));
    }
    let mut out = BTreeMap::new();
    walk("", root, &mut out);
    Ok(out)
}
