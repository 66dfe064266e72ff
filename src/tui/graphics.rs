//! Images in the terminal: an evaluated sample's pixels drawn as the model saw them.
//!
//! `ratatui-image` does the drawing: the kitty, sixel or iTerm2 graphics protocol where the
//! terminal answers for one at start-up, and half-blocks otherwise (`▀`, the upper pixel as
//! foreground and the lower one as background: two grey levels per cell, over any SSH
//! session). `KILN_GRAPHICS` forces one: `halfblocks`, `sixel`, `kitty`, `iterm2`, or `auto`
//! (the default). The terminal is asked once, before the input thread starts reading it; a
//! terminal that does not answer gets half-blocks.
//!
//! Inside tmux, `auto` means half-blocks without asking: tmux passes the query through to the
//! terminal it is attached to, and a detached session (or an outer terminal that ignores it)
//! never answers, which would leave the query's reader holding the keyboard. Naming a
//! protocol in `KILN_GRAPHICS` asks anyway.
//!
//! A [`Picture`] is encoded once, when the sample arrives, at a fixed number of cells for
//! its pixel size, so drawing a frame only copies it into the buffer.

use std::fmt;
use std::time::Duration;

use image::{DynamicImage, GrayImage, RgbImage};
use ratatui::buffer::Buffer;
use ratatui::layout::{Rect, Size};
use ratatui::widgets::Widget;
use ratatui_image::picker::cap_parser::QueryStdioOptions;
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::protocol::Protocol;
use ratatui_image::protocol::halfblocks::Halfblocks;
use ratatui_image::{Image, Resize};

/// The environment variable that forces a way of drawing images.
pub const GRAPHICS_VAR: &str = "KILN_GRAPHICS";
/// Largest picture, in cells: a 28×28 Fashion-MNIST image takes 28×14 half-blocks.
pub const MAX_COLUMNS: u16 = 28;
pub const MAX_ROWS: u16 = 14;
/// How long the terminal may take to answer the graphics query at start-up (a terminal that
/// answers at all does so within a round trip; this only bounds the wait for one that never
/// does).
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// How images are drawn: half-blocks, or a graphics protocol the terminal speaks.
#[derive(Debug, Clone, Default)]
pub struct Graphics {
    /// `None`: half-blocks.
    picker: Option<Picker>,
}

impl Graphics {
    /// Half-blocks: what every terminal shows.
    pub fn halfblocks() -> Self {
        Self::default()
    }

    /// Decides from `KILN_GRAPHICS` (`setting`) and, for `auto` outside tmux (`in_tmux`), by
    /// asking the terminal: call it after the terminal is in raw mode and before anything else
    /// reads it. Returns a problem to show when the setting is not understood or the query
    /// failed.
    pub fn detect(setting: Option<&str>, in_tmux: bool) -> (Self, Option<String>) {
        let forced = match setting.map(str::trim).filter(|s| !s.is_empty()) {
            None | Some("auto") => None,
            Some("halfblocks" | "half-blocks") => return (Self::halfblocks(), None),
            Some("sixel") => Some(ProtocolType::Sixel),
            Some("kitty") => Some(ProtocolType::Kitty),
            Some("iterm2") => Some(ProtocolType::Iterm2),
            Some(other) => {
                let problem = format!(
                    "{GRAPHICS_VAR}={other} is not known (auto, halfblocks, sixel, kitty or iterm2): half-blocks used"
                );
                return (Self::halfblocks(), Some(problem));
            }
        };
        if forced.is_none() && in_tmux {
            return (Self::halfblocks(), None);
        }
        let options = QueryStdioOptions {
            timeout: QUERY_TIMEOUT,
            ..QueryStdioOptions::default()
        };
        let mut picker = match Picker::from_query_stdio_with_options(options) {
            Ok(picker) => picker,
            Err(e) => return (Self::halfblocks(), Some(format!("images as half-blocks: {e}"))),
        };
        if let Some(protocol) = forced {
            picker.set_protocol_type(protocol);
        }
        let picker = (picker.protocol_type() != ProtocolType::Halfblocks).then_some(picker);
        (Self { picker }, None)
    }

    /// The way images are drawn, for the sample pane's title.
    pub fn name(&self) -> &'static str {
        match self.picker.as_ref().map(Picker::protocol_type) {
            None | Some(ProtocolType::Halfblocks) => "half-blocks",
            Some(ProtocolType::Sixel) => "sixel",
            Some(ProtocolType::Kitty) => "kitty",
            Some(ProtocolType::Iterm2) => "iTerm2",
        }
    }

    /// Encodes channel-major pixels in 0–1 (one channel: grey; three: RGB) for drawing.
    pub fn picture(&self, channels: usize, height: usize, width: usize, pixels: &[f32]) -> Result<Picture, String> {
        let image = to_image(channels, height, width, pixels)?;
        let size = cells_for(width, height);
        let protocol = match &self.picker {
            None => Protocol::Halfblocks(Halfblocks::new(image, size).map_err(|e| e.to_string())?),
            Some(picker) => picker
                .new_protocol(image, size, Resize::Scale(None))
                .map_err(|e| e.to_string())?,
        };
        Ok(Picture { protocol, size })
    }
}

/// Whether the console runs inside tmux (its environment says so).
pub fn in_tmux() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    set("TMUX") || std::env::var("TERM_PROGRAM").is_ok_and(|p| p == "tmux")
}

/// An image encoded for the terminal, `size` cells large.
#[derive(Clone)]
pub struct Picture {
    protocol: Protocol,
    pub size: Size,
}

impl fmt::Debug for Picture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Picture")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Widget for &Picture {
    fn render(self, area: Rect, buf: &mut Buffer) {
        Image::new(&self.protocol).allow_clipping(true).render(area, buf);
    }
}

/// Cells for a `width`×`height` image: one pixel per column and two per row (what
/// half-blocks show), scaled down to fit [`MAX_COLUMNS`]×[`MAX_ROWS`].
pub fn cells_for(width: usize, height: usize) -> Size {
    let (w, h) = (width.max(1) as f64, height.max(1) as f64);
    let scale = (f64::from(MAX_COLUMNS) / w).min(f64::from(MAX_ROWS) * 2.0 / h).min(1.0);
    let columns = (w * scale).round().max(1.0) as u16;
    let rows = (h * scale / 2.0).ceil().max(1.0) as u16;
    Size::new(columns, rows)
}

fn to_image(channels: usize, height: usize, width: usize, pixels: &[f32]) -> Result<DynamicImage, String> {
    let plane = height * width;
    if channels == 0 || plane == 0 || pixels.len() < channels * plane {
        return Err(format!(
            "{} pixel values do not make a {channels}×{height}×{width} image",
            pixels.len()
        ));
    }
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let (w, h) = (u32::try_from(width), u32::try_from(height));
    let (Ok(w), Ok(h)) = (w, h) else {
        return Err(format!("a {height}×{width} image is too large to draw"));
    };
    let image = if channels >= 3 {
        let rgb: Vec<u8> = (0..plane)
            .flat_map(|i| (0..3).map(move |c| c * plane + i))
            .map(|i| byte(pixels[i]))
            .collect();
        RgbImage::from_raw(w, h, rgb).map(DynamicImage::ImageRgb8)
    } else {
        // Two channels (or any other count below three): the first one, as grey.
        let grey: Vec<u8> = pixels[..plane].iter().map(|v| byte(*v)).collect();
        GrayImage::from_raw(w, h, grey).map(DynamicImage::ImageLuma8)
    };
    image.ok_or_else(|| format!("cannot make a {width}×{height} image"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fashion_mnist_image_takes_28_by_14_cells_and_larger_ones_shrink() {
        assert_eq!(cells_for(28, 28), Size::new(28, 14));
        assert_eq!(cells_for(64, 32), Size::new(28, 7));
        assert_eq!(cells_for(8, 8), Size::new(8, 4));
    }

    #[test]
    fn pixels_that_do_not_make_the_image_are_an_error_not_a_panic() {
        let graphics = Graphics::halfblocks();
        assert!(graphics.picture(1, 28, 28, &[0.5; 10]).is_err());
        assert!(graphics.picture(0, 28, 28, &[]).is_err());
        let rgb = graphics.picture(3, 2, 2, &[0.0, 0.2, 0.4, 0.6, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(rgb.map(|p| p.size).ok(), Some(Size::new(2, 1)));
    }

    #[test]
    fn an_unknown_setting_falls_back_to_halfblocks_and_says_so() {
        let (graphics, problem) = Graphics::detect(Some("braille"), false);
        assert_eq!(graphics.name(), "half-blocks");
        assert!(problem.is_some_and(|p| p.contains("KILN_GRAPHICS=braille")));
        let (graphics, problem) = Graphics::detect(Some("halfblocks"), false);
        assert_eq!((graphics.name(), problem), ("half-blocks", None));
    }

    #[test]
    fn tmux_gets_halfblocks_without_asking_the_terminal() {
        // Asking would read this test's stdin; tmux returns before any query is written.
        for setting in [None, Some("auto"), Some("")] {
            let (graphics, problem) = Graphics::detect(setting, true);
            assert_eq!((graphics.name(), problem), ("half-blocks", None), "{setting:?}");
        }
    }
}
