//! How long an uploaded audio file plays, for the usage estimate of a
//! transcription or translation whose upstream reported no token usage.
//!
//! # The rule
//! - **WAV** (a `RIFF`/`WAVE` file): the exact duration, `data` chunk size
//!   divided by the `fmt` chunk's byte rate.
//! - **Anything else** (mp3, m4a, ogg, webm, flac…): the file size at an
//!   assumed [`ASSUMED_BYTES_PER_SECOND`] (128 kbit/s, a typical voice or
//!   music bitrate). Compressed speech at lower bitrates is overestimated,
//!   which errs on the side of the daily cap.
//! - Tokens are [`AUDIO_TOKENS_PER_SECOND`] per started second (OpenAI's
//!   audio models bill about one input token per 100 ms of audio).

/// 128 kbit/s.
pub const ASSUMED_BYTES_PER_SECOND: u64 = 16_000;
/// One token per 100 ms.
pub const AUDIO_TOKENS_PER_SECOND: u64 = 10;

/// Estimated input tokens of an audio file.
pub fn estimated_tokens(file: &[u8]) -> u64 {
    let milliseconds = wav_milliseconds(file)
        .unwrap_or_else(|| (file.len() as u64).saturating_mul(1000) / ASSUMED_BYTES_PER_SECOND);
    milliseconds
        .saturating_mul(AUDIO_TOKENS_PER_SECOND)
        .div_ceil(1000)
}

/// The duration of a WAV file in milliseconds, if `file` is one with a
/// `fmt ` chunk before its `data` chunk.
pub fn wav_milliseconds(file: &[u8]) -> Option<u64> {
    if file.get(0..4)? != b"RIFF" || file.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut position = 12;
    let mut byte_rate = None;
    while let Some(header) = file.get(position..position + 8) {
        let size = u64::from(u32::from_le_bytes([
            header[4], header[5], header[6], header[7],
        ]));
        let body = position + 8;
        match &header[..4] {
            b"fmt " => {
                let rate = file.get(body + 8..body + 12)?;
                byte_rate = Some(u64::from(u32::from_le_bytes([
                    rate[0], rate[1], rate[2], rate[3],
                ])));
            }
            b"data" => {
                let rate = byte_rate.filter(|rate| *rate > 0)?;
                // Streamed WAVs may declare a placeholder size; trust the bytes present.
                let present = (file.len() - body) as u64;
                return Some(size.min(present).saturating_mul(1000) / rate);
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        position = body.checked_add(usize::try_from(size + (size & 1)).ok()?)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PCM WAV of `seconds` at 16 kHz mono 16-bit.
    pub fn wav(seconds: u32) -> Vec<u8> {
        let rate: u32 = 16_000 * 2;
        let data = rate * seconds;
        let mut file = Vec::new();
        file.extend_from_slice(b"RIFF");
        file.extend_from_slice(&(36 + data).to_le_bytes());
        file.extend_from_slice(b"WAVEfmt ");
        file.extend_from_slice(&16u32.to_le_bytes());
        file.extend_from_slice(&1u16.to_le_bytes());
        file.extend_from_slice(&1u16.to_le_bytes());
        file.extend_from_slice(&16_000u32.to_le_bytes());
        file.extend_from_slice(&rate.to_le_bytes());
        file.extend_from_slice(&2u16.to_le_bytes());
        file.extend_from_slice(&16u16.to_le_bytes());
        file.extend_from_slice(b"data");
        file.extend_from_slice(&data.to_le_bytes());
        file.resize(file.len() + data as usize, 0);
        file
    }

    /// WAVs are timed exactly; other files by size at 128 kbit/s.
    #[test]
    fn durations_follow_the_documented_rule() {
        assert_eq!(wav_milliseconds(&wav(3)), Some(3000));
        assert_eq!(estimated_tokens(&wav(3)), 30);
        assert_eq!(wav_milliseconds(b"ID3 not a wav"), None);
        assert_eq!(estimated_tokens(&vec![0; 32_000]), 20);
        assert_eq!(estimated_tokens(&[]), 0);
        let mut truncated = wav(2);
        truncated.truncate(44 + 16_000);
        assert_eq!(wav_milliseconds(&truncated), Some(500));
    }
}
