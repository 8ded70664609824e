//! The audio endpoints: multipart transcriptions and translations forwarded
//! byte for byte, usage reported or estimated from the audio, and speech
//! streamed back as binary.

use serde_json::{Value, json};

use super::{assert_counts, logged, post, usage, used};
use crate::relay::{Rig, upstream};
use crate::support::upstream::openai::AUDIO_CHUNK;

/// A PCM WAV of `seconds` at 16 kHz, mono, 16-bit.
pub(crate) fn wav(seconds: u32) -> Vec<u8> {
    let rate: u32 = 32_000;
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

/// A multipart body: its content type and bytes.
pub(crate) struct Form {
    pub content_type: String,
    pub body: Vec<u8>,
}

const BOUNDARY: &str = "sluicegate-test-boundary";

/// A transcription form for `model` with `file`, streamed on request.
pub(crate) fn form(model: &str, file: Vec<u8>, stream: bool) -> Form {
    let mut body = Vec::new();
    let mut text = |name: &str, value: &str| {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    };
    text("model", model);
    if stream {
        text("stream", "true");
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    Form {
        content_type: format!("multipart/form-data; boundary={BOUNDARY}"),
        body,
    }
}

pub(crate) async fn upload(
    rig: &Rig,
    path: &str,
    request_id: &str,
    form: Form,
) -> reqwest::Response {
    rig.gateway
        .relay(&rig.key, path)
        .header("x-request-id", request_id)
        .header("content-type", form.content_type)
        .body(form.body)
        .send()
        .await
        .unwrap()
}

/// Transcriptions pass the form through untouched and count the reported tokens, whole and streamed.
#[tokio::test]
async fn transcriptions_forward_the_form_and_count_token_usage() {
    let rig = Rig::start().await;
    let fake = upstream("stt").await;
    fake.configure(|behavior| behavior.usage = Some(usage(14, 45)));
    let id = rig.channel(&fake, &["gpt-4o-transcribe"], json!({})).await;
    let response = upload(
        &rig,
        "/v1/audio/transcriptions",
        "stt-1",
        form("gpt-4o-transcribe", wav(1), false),
    )
    .await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["text"], "Transcribed by stt");
    let recorded = fake.recorded();
    let sent = &recorded[0];
    assert!(
        sent.content_type
            .as_deref()
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );
    assert!(
        sent.body.windows(4).any(|window| window == b"RIFF"),
        "the file is forwarded"
    );
    assert_counts(
        &logged(&rig, "stt-1", "/v1/audio/transcriptions").await,
        14,
        45,
        59,
        false,
    );

    let response = upload(
        &rig,
        "/v1/audio/transcriptions",
        "stt-2",
        form("gpt-4o-transcribe", wav(1), true),
    )
    .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("transcript.text.done"), "{text}");
    let row = logged(&rig, "stt-2", "/v1/audio/transcriptions").await;
    assert_eq!(row["stream"], true);
    assert_counts(&row, 14, 45, 59, false);
    assert_eq!(used(&rig, id), 118);
}

/// Duration-only usage (whisper) is estimated: 3 s of WAV is 30 tokens, plus the returned text.
#[tokio::test]
async fn duration_usage_is_estimated_from_the_wav() {
    let rig = Rig::start().await;
    let fake = upstream("whisper").await;
    fake.omit_usage();
    let id = rig.channel(&fake, &["whisper-1"], json!({})).await;
    let response = upload(
        &rig,
        "/v1/audio/transcriptions",
        "wh-1",
        form("whisper-1", wav(3), false),
    )
    .await;
    assert_eq!(response.status(), 200);
    // "Transcribed by whisper" is 22 ASCII characters: 6 tokens by the heuristic.
    assert_counts(
        &logged(&rig, "wh-1", "/v1/audio/transcriptions").await,
        30,
        6,
        36,
        true,
    );
    let response = upload(
        &rig,
        "/v1/audio/translations",
        "wh-2",
        form("whisper-1", wav(2), false),
    )
    .await;
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["text"], "Translated by whisper");
    assert_counts(
        &logged(&rig, "wh-2", "/v1/audio/translations").await,
        20,
        6,
        26,
        true,
    );
    assert_eq!(used(&rig, id), 62);
}

/// Speech audio is streamed back as the upstream's bytes, estimated from the input text.
#[tokio::test]
async fn speech_streams_audio_and_estimates_from_text() {
    let rig = Rig::start().await;
    let fake = upstream("tts").await;
    let id = rig.channel(&fake, &["tts-x"], json!({})).await;
    let body = json!({"model": "tts-x", "input": "abcdefgh", "voice": "alloy"});
    let response = post(&rig, "/v1/audio/speech", "tts-1", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    let audio = response.bytes().await.unwrap();
    assert_eq!(&audio[..], AUDIO_CHUNK.repeat(3).as_slice());
    let row = logged(&rig, "tts-1", "/v1/audio/speech").await;
    assert_eq!(row["stream"], true);
    assert_counts(&row, 2, 0, 2, true);

    let events =
        json!({"model": "tts-x", "input": "abcdefgh", "voice": "alloy", "stream_format": "sse"});
    let response = post(&rig, "/v1/audio/speech", "tts-2", &events).await;
    assert!(response.text().await.unwrap().contains("speech.audio.done"));
    assert_counts(
        &logged(&rig, "tts-2", "/v1/audio/speech").await,
        11,
        7,
        18,
        false,
    );
    assert_eq!(used(&rig, id), 20);
}
