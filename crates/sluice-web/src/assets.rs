//! Static files: embedded in the binary (debug builds too), served under content-hashed URLs
//! (`/ui/static/app.3f2a9c01d4.js`) that never change meaning, so browsers may cache them
//! forever. A file's URL changes whenever its bytes do.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// The name templates ask for (`app.js`).
    pub name: &'static str,
    /// The hashed name it is served under (`app.3f2a9c01d4.js`).
    pub hashed: String,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! embed {
    ($name:literal, $path:literal, $type:literal) => {
        (
            $name,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $path)).as_slice(),
            $type,
        )
    };
}

const FILES: [(&str, &[u8], &str); 6] = [
    embed!("app.css", "static/app.css", "text/css; charset=utf-8"),
    embed!("favicon.svg", "static/favicon.svg", "image/svg+xml"),
    embed!("app.js", "static/app.js", "text/javascript; charset=utf-8"),
    embed!(
        "htmx.min.js",
        "vendor/htmx-2.0.11.min.js",
        "text/javascript; charset=utf-8"
    ),
    embed!(
        "uPlot.min.js",
        "vendor/uPlot-1.6.32.iife.min.js",
        "text/javascript; charset=utf-8"
    ),
    embed!(
        "uPlot.min.css",
        "vendor/uPlot-1.6.32.min.css",
        "text/css; charset=utf-8"
    ),
];

/// Every embedded file, hashed once.
pub static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, bytes, content_type)| {
            let digest = Sha256::digest(bytes);
            let hash: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
            let hashed = match name.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
                None => format!("{name}.{hash}"),
            };
            Asset {
                name,
                hashed,
                content_type,
                bytes,
            }
        })
        .collect()
});

/// The URL of an embedded file by its plain name; an unknown name is a template bug, caught
/// by the snapshot tests (it renders as a URL that answers 404).
pub fn url(name: &str) -> String {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => format!("/ui/static/{}", asset.hashed),
        None => format!("/ui/static/missing-{name}"),
    }
}

/// `GET /ui/static/{file}`: only hashed names are served.
pub async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.hashed == file) {
        Some(asset) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            asset.bytes,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such file\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn urls_carry_the_content_hash() {
        let app = url("app.js");
        assert!(
            app.starts_with("/ui/static/app.") && app.ends_with(".js"),
            "{app}"
        );
        assert_eq!(app.len(), "/ui/static/app..js".len() + 10);
        let hashes: std::collections::HashSet<_> = ASSETS.iter().map(|a| &a.hashed).collect();
        assert_eq!(hashes.len(), FILES.len());
    }
}
