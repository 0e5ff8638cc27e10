//! Bounded gzip decompression: a `.nii.gz` is inflated only as far as its header says it
//! reaches, so a small file that expands to gigabytes costs nothing.

use std::io::{self, Read};

use flate2::bufread::MultiGzDecoder;

use super::error::NiftiError;

/// True when `bytes` start with the gzip magic `1f 8b` (the file name is never consulted).
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// A gzip stream read from memory, counting the bytes it has produced.
///
/// Multi-member streams (several gzip files concatenated, as bgzip and some parallel
/// compressors write) read as one.
pub struct Gunzip<'a> {
    decoder: MultiGzDecoder<&'a [u8]>,
    produced: usize,
}

impl<'a> Gunzip<'a> {
    /// Starts decompressing `compressed`, which should begin with the gzip magic.
    pub fn new(compressed: &'a [u8]) -> Self {
        Gunzip {
            decoder: MultiGzDecoder::new(compressed),
            produced: 0,
        }
    }

    /// Decompressed bytes produced so far.
    pub fn produced(&self) -> usize {
        self.produced
    }

    /// The next `n` decompressed bytes, or fewer when the stream ends first.
    ///
    /// The buffer is allocated once with capacity `n` and never grows, so `n` must already
    /// be checked against the caller's limits.
    pub fn read_up_to(&mut self, n: usize) -> Result<Vec<u8>, NiftiError> {
        let mut out = Vec::with_capacity(n);
        let result = (&mut self.decoder).take(n as u64).read_to_end(&mut out);
        self.produced += out.len();
        result.map_err(|err| self.corrupt(err))?;
        Ok(out)
    }

    /// Inflates the next `n` bytes through one reused buffer of `chunk` bytes, handing each
    /// full chunk (and a shorter last one) to `each`; returns how many bytes there were
    /// (fewer than `n` when the stream ends first).
    ///
    /// Every chunk but the last holds exactly `chunk` bytes, so a `chunk` that is a multiple
    /// of the voxel size never splits a voxel.
    pub fn read_chunks(
        &mut self,
        n: usize,
        chunk: usize,
        mut each: impl FnMut(&[u8]),
    ) -> Result<usize, NiftiError> {
        let mut buffer = vec![0u8; chunk.min(n)];
        let mut remaining = n;
        while remaining > 0 {
            let want = remaining.min(buffer.len());
            let mut filled = 0;
            while filled < want {
                match self.decoder.read(&mut buffer[filled..want]) {
                    Ok(0) => break,
                    Ok(count) => filled += count,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => {
                        self.produced += filled;
                        return Err(self.corrupt(err));
                    }
                }
            }
            self.produced += filled;
            each(&buffer[..filled]);
            remaining -= filled;
            if filled < want {
                break;
            }
        }
        Ok(n - remaining)
    }

    /// Discards the next `n` decompressed bytes; returns how many there were (fewer than `n`
    /// when the stream ends first).
    pub fn skip(&mut self, n: usize) -> Result<usize, NiftiError> {
        let result = io::copy(&mut (&mut self.decoder).take(n as u64), &mut io::sink());
        let skipped = match result {
            Ok(count) => count as usize,
            Err(err) => return Err(self.corrupt(err)),
        };
        self.produced += skipped;
        Ok(skipped)
    }

    /// Checks that the stream ends here and that its checksums hold.
    ///
    /// At most one more byte is inflated: any data beyond what the header declared is
    /// refused (`declared` names that size in the error) instead of being decompressed.
    pub fn finish(mut self, declared: usize) -> Result<(), NiftiError> {
        let mut probe = [0u8; 1];
        loop {
            match self.decoder.read(&mut probe) {
                Ok(0) => return Ok(()),
                Ok(_) => return Err(NiftiError::GzipTrailingData { declared }),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(self.corrupt(err)),
            }
        }
    }

    fn corrupt(&self, err: io::Error) -> NiftiError {
        let message = match err.kind() {
            io::ErrorKind::UnexpectedEof => "the stream is truncated".to_string(),
            _ => err.to_string(),
        };
        NiftiError::Gzip {
            after_bytes: self.produced,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn bomb_is_inflated_only_to_the_limit() {
        // 64 MiB of zeros compress to about 64 KiB; asking for 1 000 bytes must produce
        // exactly 1 000, and the end check must stop after one more byte.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 200_000, "bomb is {} bytes", bomb.len());
        let mut stream = Gunzip::new(&bomb);
        let head = stream.read_up_to(1000).unwrap();
        assert_eq!(head.len(), 1000);
        assert_eq!(head.capacity(), 1000);
        assert_eq!(stream.produced(), 1000);
        assert_eq!(
            stream.finish(1000),
            Err(NiftiError::GzipTrailingData { declared: 1000 })
        );
    }

    #[test]
    fn exact_stream_passes_and_short_stream_is_short() {
        let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let compressed = gzip(&data);
        let mut stream = Gunzip::new(&compressed);
        assert_eq!(stream.skip(1000), Ok(1000));
        assert_eq!(stream.read_up_to(4000).unwrap(), data[1000..]);
        assert_eq!(stream.finish(5000), Ok(()));

        let mut stream = Gunzip::new(&compressed);
        assert_eq!(stream.read_up_to(6000).unwrap().len(), 5000);

        // Chunks of 1 024: four full ones and the 904 bytes left.
        let mut stream = Gunzip::new(&compressed);
        let mut sizes = Vec::new();
        let mut joined = Vec::new();
        let count = stream.read_chunks(5000, 1024, |c| {
            sizes.push(c.len());
            joined.extend_from_slice(c);
        });
        assert_eq!(count, Ok(5000));
        assert_eq!(sizes, [1024, 1024, 1024, 1024, 904]);
        assert_eq!(joined, data);
        assert_eq!(
            Gunzip::new(&compressed).read_chunks(9000, 4096, |_| {}),
            Ok(5000)
        );
    }

    #[test]
    fn truncation_and_bad_checksum_are_errors() {
        let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let compressed = gzip(&data);
        let truncated = &compressed[..compressed.len() / 2];
        let err = Gunzip::new(truncated).read_up_to(5000).unwrap_err();
        assert!(matches!(err, NiftiError::Gzip { .. }), "{err:?}");

        // The CRC-32 is the 8th to 5th last byte of a gzip member.
        let mut bad_crc = compressed.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 0xFF;
        let mut stream = Gunzip::new(&bad_crc);
        assert_eq!(stream.read_up_to(5000).unwrap().len(), 5000);
        let err = stream.finish(5000).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}
