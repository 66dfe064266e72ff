//! Themes are data: TOML files of semantic style slots, resolved into a [`Theme`] that widget
//! code borrows (`theme.loss_train`, never a literal colour).
//!
//! ```toml
//! name = "dark"
//! [styles]
//! selected = { fg = "black", bg = "cyan", bold = true }
//! loss-train = { fg = "light-cyan" }
//! ```
//!
//! Every slot is optional; a missing one takes the built-in dark theme's style. An unknown
//! key or colour is reported with the file and line. Built-in themes are `themes/*.toml`,
//! compiled in; the config dir's `themes/<name>.toml` shadows them.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use serde::{Deserialize, Deserializer};

/// Themes shipped with kiln, compiled in: `(name, toml)`.
pub const BUILTIN: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    ("high-contrast", include_str!("../../themes/high-contrast.toml")),
];

/// A theme file could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThemeError {
    #[error("{file}:{line}: {message}")]
    Invalid { file: String, line: usize, message: String },
    #[error("unknown theme '{name}' (built in: dark, light, high-contrast; or put {name}.toml in {dir})")]
    Unknown { name: String, dir: String },
    #[error("cannot read theme {file}: {reason}")]
    Unreadable { file: String, reason: String },
}

/// One colour as written in a theme file: a name (`light-blue`), an index (`0`–`255`) or `#rrggbb`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ColorDto(Color);

impl<'de> Deserialize<'de> for ColorDto {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Color::from_str(&s).map(ColorDto).map_err(|_| {
            serde::de::Error::custom(format!(
                "unknown colour '{s}' (use a name such as red or light-blue, an index 0-255, or #rrggbb)"
            ))
        })
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleDto {
    fg: Option<ColorDto>,
    bg: Option<ColorDto>,
    #[serde(default)]
    bold: bool,
    #[serde(default)]
    dim: bool,
    #[serde(default)]
    italic: bool,
    #[serde(default)]
    underlined: bool,
    #[serde(default)]
    reversed: bool,
}

impl StyleDto {
    fn resolve(self) -> Style {
        let mut style = Style::default();
        if let Some(ColorDto(c)) = self.fg {
            style = style.fg(c);
        }
        if let Some(ColorDto(c)) = self.bg {
            style = style.bg(c);
        }
        let flags = [
            (self.bold, Modifier::BOLD),
            (self.dim, Modifier::DIM),
            (self.italic, Modifier::ITALIC),
            (self.underlined, Modifier::UNDERLINED),
            (self.reversed, Modifier::REVERSED),
        ];
        flags
            .into_iter()
            .filter(|(on, _)| *on)
            .fold(style, |s, (_, m)| s.add_modifier(m))
    }
}

macro_rules! theme_slots {
    ($($(#[$doc:meta])* $slot:ident),+ $(,)?) => {
        /// Resolved styles, one per semantic slot.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Theme {
            /// The theme's name, for the status line and `:theme`.
            pub name: String,
            $($(#[$doc])* pub $slot: Style,)+
        }

        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        struct StylesDto {
            $($slot: Option<StyleDto>,)+
        }

        impl StylesDto {
            fn resolve_over(self, base: &Theme, name: String) -> Theme {
                Theme {
                    name,
                    $($slot: self.$slot.map_or(base.$slot, StyleDto::resolve),)+
                }
            }
        }

        impl Theme {
            /// A theme with every slot unstyled (the fallback's fallback).
            fn plain() -> Self {
                Self { name: "plain".into(), $($slot: Style::default(),)+ }
            }

            /// Every slot with its name, for checks and listings.
            pub fn slots(&self) -> Vec<(&'static str, Style)> {
                vec![$((stringify!($slot), self.$slot),)+]
            }
        }
    };
}

theme_slots! {
    /// Ordinary text.
    base,
    /// Secondary text: hints, units, timestamps.
    muted,
    /// Panel borders.
    border,
    /// The focused panel's border.
    border_focus,
    /// Panel titles.
    title,
    /// Table header rows.
    header,
    /// The selected row.
    selected,
    /// The active screen's tab.
    tab_active,
    /// Other tabs.
    tab,
    /// Key names in hints and help.
    key,
    /// Things that went well (succeeded, in production, correct prediction).
    ok,
    /// Things to watch (queued, degraded, marked for compare).
    warn,
    /// Failures and errors.
    error,
    /// Running / live things.
    active,
    /// The daemon-down banner.
    banner,
    /// The status line.
    status,
    /// Dialog borders (confirm, form, palette).
    dialog,
    /// Training-loss curve.
    loss_train,
    /// Validation-loss curve.
    loss_val,
    /// The overlaid second run.
    loss_overlay,
    /// GPU utilisation curve.
    gpu_util,
    /// GPU memory curve.
    gpu_mem,
    /// GPU temperature curve.
    gpu_temp,
    /// GPU power curve.
    gpu_power,
    /// Host CPU curve.
    cpu,
    /// Host memory gauge.
    ram,
    /// A word of a text sample outside the model's vocabulary.
    oov,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: Option<String>,
    #[serde(default)]
    styles: StylesDto,
}

impl Default for Theme {
    fn default() -> Self {
        Self::builtin("dark").unwrap_or_else(|_| Self::plain())
    }
}

impl Theme {
    /// Parses theme TOML; `file` names it in errors. Missing slots come from `base`.
    pub fn parse(text: &str, file: &str, base: &Theme) -> Result<Theme, ThemeError> {
        let parsed: ThemeFile = toml::from_str(text).map_err(|e| ThemeError::Invalid {
            file: file.to_owned(),
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            message: e.message().trim().to_owned(),
        })?;
        let name = parsed.name.unwrap_or_else(|| file_stem(file));
        Ok(parsed.styles.resolve_over(base, name))
    }

    /// A built-in theme by name.
    pub fn builtin(name: &str) -> Result<Theme, ThemeError> {
        let (_, text) = BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| ThemeError::Unknown {
                name: name.to_owned(),
                dir: "the config dir's themes/".to_owned(),
            })?;
        Self::parse(text, &format!("themes/{name}.toml"), &Theme::plain())
    }

    /// Finds `name`: a path to a `.toml` file, `<config dir>/themes/<name>.toml`, or a built-in.
    pub fn load(name: &str, config_dir: Option<&Path>) -> Result<Theme, ThemeError> {
        let base = Theme::default();
        let candidate: Option<PathBuf> = if name.ends_with(".toml") {
            Some(PathBuf::from(name))
        } else {
            config_dir.map(|d| d.join("themes").join(format!("{name}.toml")))
        };
        if let Some(path) = candidate.filter(|p| p.is_file() || name.ends_with(".toml")) {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| ThemeError::Unreadable {
                file: file.clone(),
                reason: e.to_string(),
            })?;
            return Self::parse(&text, &file, &base);
        }
        Self::builtin(name).map_err(|_| ThemeError::Unknown {
            name: name.to_owned(),
            dir: config_dir.map_or_else(
                || "the config dir".to_owned(),
                |d| d.join("themes").display().to_string(),
            ),
        })
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |head| head.matches('\n').count() + 1)
}

fn file_stem(file: &str) -> String {
    Path::new(file)
        .file_stem()
        .map_or_else(|| file.to_owned(), |s| s.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        for (name, _) in BUILTIN {
            let theme = Theme::builtin(name);
            assert!(theme.is_ok(), "{name}: {theme:?}");
        }
    }

    #[test]
    fn unknown_key_reports_file_and_line() {
        let text = "name = \"x\"\n[styles]\nbase = { fg = \"red\" }\nlos-train = { fg = \"red\" }\n";
        let err = Theme::parse(text, "my.toml", &Theme::default()).err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.starts_with("my.toml:4: "), "{msg}");
        assert!(msg.contains("los-train"), "{msg}");
    }

    #[test]
    fn bad_colour_reports_file_and_line() {
        let text = "[styles]\n\nselected = { fg = \"blurple\" }\n";
        let err = Theme::parse(text, "t.toml", &Theme::default()).err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.starts_with("t.toml:3: "), "{msg}");
        assert!(msg.contains("unknown colour 'blurple'"), "{msg}");
    }

    #[test]
    fn missing_slots_fall_back() {
        let theme = Theme::parse("[styles]\nbase = { fg = \"red\" }\n", "p.toml", &Theme::default());
        let theme = theme.unwrap_or_else(|_| Theme::plain());
        assert_eq!(theme.base.fg, Some(Color::Red));
        assert_eq!(theme.selected, Theme::default().selected);
        assert_eq!(theme.name, "p");
    }

    #[test]
    fn high_contrast_uses_only_16_colours() {
        let theme = Theme::builtin("high-contrast").unwrap_or_else(|_| Theme::plain());
        let sixteen = |c: Option<Color>| !matches!(c, Some(Color::Rgb(..)) | Some(Color::Indexed(16..)));
        for (slot, style) in theme.slots() {
            assert!(
                sixteen(style.fg) && sixteen(style.bg),
                "{slot} uses more than 16 colours"
            );
        }
        assert_eq!(theme.name, "high-contrast");
    }
}
