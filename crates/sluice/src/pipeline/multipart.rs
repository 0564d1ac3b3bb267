//! The multipart forms of the forwarded endpoints (`/v1/audio/transcriptions`,
//! `/v1/audio/translations`, `/v1/images/edits`), read with `multer` only as far as routing and
//! accounting need: the text fields (`model`, `stream`, `size`, …) and which file fields are
//! there. The upstream receives the body as it came, boundary and all; only when the model is
//! renamed is the form written again, with the client's boundary and each part's own headers.

use std::convert::Infallible;

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;
use sluice_dialect::{ErrorBody, ErrorKind};

use crate::error::GatewayError;

/// Text fields longer than this are not kept (a `prompt` is counted, never a file).
const TEXT_LIMIT: usize = 64 * 1024;

/// One part of the form, kept to write the form again.
#[derive(Debug)]
struct Part {
    name: String,
    headers: HeaderMap,
    data: Bytes,
    /// A file (the part has a `filename`).
    file: bool,
}

/// A parsed form.
#[derive(Debug)]
pub struct Form {
    boundary: String,
    parts: Vec<Part>,
}

impl Form {
    /// Parses `body`, whose `content_type` must be `multipart/form-data` with a boundary.
    pub async fn parse(content_type: Option<&str>, body: Bytes) -> Result<Self, GatewayError> {
        let boundary = content_type
            .and_then(|ct| multer::parse_boundary(ct).ok())
            .ok_or_else(|| {
                invalid(
                    "This endpoint takes a multipart/form-data body (Content-Type: \
                     multipart/form-data; boundary=…).",
                )
            })?;
        let stream = futures_util::stream::once(async move { Ok::<Bytes, Infallible>(body) });
        let mut form = multer::Multipart::new(stream, boundary.clone());
        let mut parts = Vec::new();
        loop {
            let field = match form.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(e) => return Err(invalid(format!("The multipart body is malformed: {e}."))),
            };
            let name = field.name().unwrap_or_default().to_string();
            let file = field.file_name().is_some();
            let headers = field.headers().clone();
            let data = field
                .bytes()
                .await
                .map_err(|e| invalid(format!("The multipart body is malformed: {e}.")))?;
            parts.push(Part {
                name,
                headers,
                data,
                file,
            });
        }
        Ok(Self { boundary, parts })
    }

    /// The text of field `name` (its first occurrence), when it is text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|p| p.name == name && !p.file && p.data.len() <= TEXT_LIMIT)
            .and_then(|p| std::str::from_utf8(&p.data).ok())
            .map(str::trim)
    }

    /// Whether a file was sent under one of `names`.
    pub fn has_file(&self, names: &[&str]) -> bool {
        self.parts
            .iter()
            .any(|p| p.file && !p.data.is_empty() && names.contains(&p.name.as_str()))
    }

    /// The text fields as a JSON object (what accounting counts and prices: no file data).
    pub fn text_fields(&self) -> serde_json::Value {
        let mut fields = serde_json::Map::new();
        for part in &self.parts {
            if !part.file
                && let Some(text) = self.text(&part.name)
            {
                fields
                    .entry(part.name.clone())
                    .or_insert_with(|| serde_json::Value::String(text.to_string()));
            }
        }
        serde_json::Value::Object(fields)
    }

    /// The form written again with the client's boundary, `model` set to `model`.
    pub fn with_model(&self, model: &str) -> Bytes {
        let size: usize = self.parts.iter().map(|p| p.data.len() + 256).sum();
        let mut out = BytesMut::with_capacity(size + 64);
        for part in &self.parts {
            out.put_slice(b"--");
            out.put_slice(self.boundary.as_bytes());
            out.put_slice(b"\r\n");
            for (name, value) in &part.headers {
                out.put_slice(name.as_str().as_bytes());
                out.put_slice(b": ");
                out.put_slice(value.as_bytes());
                out.put_slice(b"\r\n");
            }
            out.put_slice(b"\r\n");
            if part.name == "model" && !part.file {
                out.put_slice(model.as_bytes());
            } else {
                out.put_slice(&part.data);
            }
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"--");
        out.put_slice(self.boundary.as_bytes());
        out.put_slice(b"--\r\n");
        out.freeze()
    }
}

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::bad_request(ErrorBody::new(ErrorKind::InvalidRequest, message))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const BODY: &str = "--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\
        Content-Type: audio/wav\r\n\r\nRIFF\x00\x01binary\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"stream\"\r\n\r\ntrue\r\n--XyZ--\r\n";

    #[tokio::test]
    async fn reads_text_fields_and_rewrites_only_the_model() {
        let form = Form::parse(
            Some("multipart/form-data; boundary=XyZ"),
            Bytes::from_static(BODY.as_bytes()),
        )
        .await
        .unwrap();
        assert_eq!(form.text("model"), Some("whisper"));
        assert_eq!(form.text("stream"), Some("true"));
        assert_eq!(form.text("file"), None);
        assert!(form.has_file(&["file"]));
        assert!(!form.has_file(&["image"]));
        assert_eq!(
            form.text_fields(),
            serde_json::json!({"model": "whisper", "stream": "true"})
        );
        let renamed = form.with_model("whisper-1");
        let again = Form::parse(Some("multipart/form-data; boundary=XyZ"), renamed.clone())
            .await
            .unwrap();
        assert_eq!(again.text("model"), Some("whisper-1"));
        assert_eq!(again.parts[1].data.as_ref(), b"RIFF\x00\x01binary");
        assert!(renamed.starts_with(b"--XyZ\r\ncontent-disposition: form-data; name=\"model\""));
    }

    #[tokio::test]
    async fn refuses_bodies_that_are_no_form() {
        let err = Form::parse(Some("application/json"), Bytes::from_static(b"{}"))
            .await
            .unwrap_err();
        assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
        let err = Form::parse(
            Some("multipart/form-data; boundary=XyZ"),
            Bytes::from_static(b"--XyZ\r\nno headers end"),
        )
        .await
        .unwrap_err();
        assert!(
            err.body.message.contains("malformed"),
            "{}",
            err.body.message
        );
    }
}
