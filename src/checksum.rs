//! Content checksums: the CRC-32 that checkpoints and resume points carry in their safetensors
//! header (`"checksum"` metadata, verified on load), and the digests that tie a cached analysis
//! to the files it analysed. CRC-32 detects flipped bits and changed files; it is no defence
//! against someone forging a file on purpose.

use anyhow::{bail, Context, Result};

/// Header metadata key of a safetensors file's checksum.
pub const METADATA_KEY: &str = "checksum";

/// `crc32:` and eight hex digits of the CRC-32 of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("crc32:{:08x}", crc32fast::hash(bytes))
}

/// The data section of a safetensors file (everything after the header), or an error for a
/// file too short to have one.
pub fn data_section(bytes: &[u8]) -> Result<&[u8]> {
    let n = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .context("the file is shorter than a safetensors header")?;
    usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_add(8))
        .and_then(|start| bytes.get(start..))
        .context("the header length runs past the end of the file")
}

/// Checks a safetensors file's data section against the checksum in its header metadata, when
/// it has one (files written before checksums existed have none and are accepted).
pub fn verify(
    bytes: &[u8],
    metadata: Option<&std::collections::HashMap<String, String>>,
) -> Result<()> {
    let Some(stored) = metadata.and_then(|m| m.get(METADATA_KEY)) else {
        return Ok(());
    };
    let computed = digest(data_section(bytes)?);
    if *stored != computed {
        bail!("its data does not match the checksum in its header (stored {stored}, computed {computed}): the file is corrupt");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_differ_by_one_bit() {
        assert_eq!(digest(b"bitgrok"), digest(b"bitgrok"));
        assert_ne!(digest(b"bitgrok"), digest(b"bitgrol"));
        assert_eq!(digest(b""), "crc32:00000000");
    }

    #[test]
    fn data_section_rejects_lengths_past_the_end() {
        let mut bytes = 4u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}  DATA");
        assert_eq!(data_section(&bytes).unwrap(), b"DATA");
        assert!(data_section(&bytes[..6]).is_err());
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert!(data_section(&huge).is_err());
    }
}
