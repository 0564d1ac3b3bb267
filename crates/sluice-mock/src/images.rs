//! Inline images are checked as the real APIs check them: base64 in the standard alphabet with
//! its padding (OpenAI's data URLs, Anthropic's `source.data`). URL-safe base64, which Google's
//! SDKs produce and Gemini accepts, is refused.

use base64::Engine as _;
use serde_json::Value;

/// The first inline image in `body` (at any depth) whose data is not standard base64, as a
/// JSON path, e.g. `messages[0].content[1].image_url.url`.
pub(crate) fn first_invalid(body: &Value) -> Option<String> {
    let mut path = String::new();
    walk(body, &mut path).then_some(path)
}

fn walk(value: &Value, path: &mut String) -> bool {
    match value {
        Value::Object(fields) => {
            // Anthropic: `{"type":"base64","media_type":…,"data":…}`.
            if fields.get("type").and_then(Value::as_str) == Some("base64")
                && let Some(data) = fields.get("data").and_then(Value::as_str)
                && !is_standard(data)
            {
                path.push_str(".data");
                return true;
            }
            for (key, field) in fields {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                // OpenAI Chat (`image_url.url`) and Responses (`image_url`): data URLs.
                if let Value::String(url) = field
                    && (key == "url" || key == "image_url")
                    && let Some((_, data)) = url
                        .strip_prefix("data:")
                        .and_then(|rest| rest.split_once(";base64,"))
                    && !is_standard(data)
                {
                    return true;
                }
                if walk(field, path) {
                    return true;
                }
                path.truncate(len);
            }
            false
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if walk(item, path) {
                    return true;
                }
                path.truncate(len);
            }
            false
        }
        _ => false,
    }
}

fn is_standard(data: &str) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_safe_images_are_found() {
        let chat = json!({"messages": [{"content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,-_-_"}}]}]});
        assert_eq!(
            first_invalid(&chat).as_deref(),
            Some("messages[0].content[0].image_url.url")
        );
        let anthropic = json!({"messages": [{"content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "-_8"}}]}]});
        assert_eq!(
            first_invalid(&anthropic).as_deref(),
            Some("messages[0].content[0].source.data")
        );
        let responses = json!({"input": [{"content": [{"type": "input_image", "image_url": "data:image/png;base64,+/+/"}]}]});
        assert_eq!(first_invalid(&responses), None);
    }
}
