//! QR codes as standalone SVG, so enrolment pages can show an `otpauth://` URI without an image
//! library or a round trip to a third-party renderer.

use qrcodegen::{QrCode, QrCodeEcc};

/// Modules of white margin around the code; scanners need 4 (ISO/IEC 18004).
const QUIET_ZONE: i32 = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    #[error("text is too long to fit in a QR code")]
    TooLong,
}

/// Renders `text` as a QR code (error correction Medium) in an SVG sized in module units, so it
/// scales to any display size without blurring.
pub fn svg(text: &str) -> Result<String, QrError> {
    let code = QrCode::encode_text(text, QrCodeEcc::Medium).map_err(|_| QrError::TooLong)?;
    let size = code.size();
    let extent = size + 2 * QUIET_ZONE;
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if code.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + QUIET_ZONE, y + QUIET_ZONE));
            }
        }
    }
    Ok(format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {extent} {extent}" shape-rendering="crispEdges">"#,
            r##"<rect width="{extent}" height="{extent}" fill="#fff"/><path d="{path}" fill="#000"/></svg>"##,
        ),
        extent = extent,
        path = path,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const URI: &str = "otpauth://totp/Cobro:ana%40example.com?secret=MZXW6YTBOI&issuer=Cobro";

    #[test]
    fn renders_standalone_svg() {
        let image = svg(URI).unwrap();
        assert!(image.starts_with("<svg"));
        assert!(image.ends_with("</svg>"));
        assert!(image.contains("<path d=\"M"));
        assert!(image.contains("shape-rendering=\"crispEdges\""));
        assert!(image.contains("<rect"));
    }

    #[test]
    fn view_box_includes_quiet_zone() {
        let size = QrCode::encode_text(URI, QrCodeEcc::Medium).unwrap().size();
        let extent = size + 2 * QUIET_ZONE;
        assert!(svg(URI).unwrap().contains(&format!("viewBox=\"0 0 {extent} {extent}\"")));
    }

    #[test]
    fn too_long_input_is_an_error() {
        assert_eq!(svg(&"a".repeat(10_000)), Err(QrError::TooLong));
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(svg(URI).unwrap(), svg(URI).unwrap());
        assert_ne!(svg(URI).unwrap(), svg("something else").unwrap());
    }

    #[test]
    fn empty_text_still_renders() {
        assert!(svg("").unwrap().ends_with("</svg>"));
    }
}
