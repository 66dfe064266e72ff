//! Keys → [`Action`]s. The default map is below; the config file's `[keymap]` table replaces
//! any action's keys (`cancel-job = ["x", "ctrl-k"]`). The help screen is generated from the
//! live map, so it always tells the truth.

use std::collections::BTreeMap;
use std::fmt;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Action;

/// A key with its modifiers, as written in config (`ctrl-r`, `G`, `tab`, `f1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    /// The normalised form of a terminal key event (shift is implied by the character).
    pub fn from_event(event: &KeyEvent) -> Key {
        let mut mods = event.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        if matches!(event.code, KeyCode::Char(_) | KeyCode::BackTab) {
            mods.remove(KeyModifiers::SHIFT);
        }
        Key { code: event.code, mods }
    }

    /// Parses `ctrl-r`, `alt-x`, `enter`, `esc`, `space`, `pgdn`, `f5`, or one character.
    pub fn parse(text: &str) -> Result<Key, String> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = text;
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                mods |= KeyModifiers::CONTROL;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-") {
                mods |= KeyModifiers::ALT;
                rest = r;
            } else {
                break;
            }
        }
        let code = named_code(rest)
            .or_else(|| single_char(rest).map(KeyCode::Char))
            .ok_or_else(|| format!("unknown key '{text}' (e.g. q, G, ctrl-r, enter, esc, tab, up, pgdn, f5)"))?;
        Ok(Key { code, mods })
    }
}

fn single_char(s: &str) -> Option<char> {
    let mut chars = s.chars();
    let c = chars.next()?;
    chars.next().is_none().then_some(c)
}

const NAMED: [(&str, KeyCode); 14] = [
    ("enter", KeyCode::Enter),
    ("esc", KeyCode::Esc),
    ("tab", KeyCode::Tab),
    ("backtab", KeyCode::BackTab),
    ("space", KeyCode::Char(' ')),
    ("up", KeyCode::Up),
    ("down", KeyCode::Down),
    ("left", KeyCode::Left),
    ("right", KeyCode::Right),
    ("pgup", KeyCode::PageUp),
    ("pgdn", KeyCode::PageDown),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
    ("backspace", KeyCode::Backspace),
];

fn named_code(s: &str) -> Option<KeyCode> {
    if let Some(n) = s.strip_prefix('f').and_then(|n| n.parse::<u8>().ok()) {
        return Some(KeyCode::F(n));
    }
    NAMED.iter().find(|(name, _)| *name == s).map(|(_, code)| *code)
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::F(n) => write!(f, "f{n}"),
            code => match NAMED.iter().find(|(_, c)| *c == code) {
                Some((name, _)) => f.write_str(name),
                None => write!(f, "{code:?}"),
            },
        }
    }
}

/// The live binding of keys to actions.
#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    bindings: Vec<(Key, Action)>,
}

const DEFAULTS: &[(Action, &[&str])] = &[
    (Action::Quit, &["q", "ctrl-c"]),
    (Action::Help, &["?"]),
    (Action::Palette, &[":"]),
    (Action::Filter, &["/"]),
    (Action::Back, &["esc"]),
    (Action::NextScreen, &["tab"]),
    (Action::PrevScreen, &["backtab"]),
    (Action::ShowModels, &["1"]),
    (Action::ShowJobs, &["2"]),
    (Action::ShowGpu, &["3"]),
    (Action::ShowServing, &["4"]),
    (Action::ShowStudies, &["5"]),
    (Action::ShowContexts, &["6"]),
    (Action::Up, &["up", "k"]),
    (Action::Down, &["down", "j"]),
    (Action::PageUp, &["pgup"]),
    (Action::PageDown, &["pgdn"]),
    (Action::Top, &["home", "g"]),
    (Action::Bottom, &["end", "G"]),
    (Action::Select, &["enter"]),
    (Action::FocusNext, &["right", "l"]),
    (Action::FocusPrev, &["left", "h"]),
    (Action::Refresh, &["ctrl-r"]),
    (Action::MarkCompare, &["m"]),
    (Action::Deploy, &["d"]),
    (Action::Rollback, &["r"]),
    (Action::TryRequest, &["t"]),
    (Action::NewTraining, &["n"]),
    (Action::NewEval, &["e"]),
    (Action::CancelJob, &["c"]),
    (Action::Promote, &["p"]),
    (Action::AbortCanary, &["a"]),
    (Action::DeleteVersion, &["x"]),
    (Action::ToggleSmoothing, &["s"]),
    (Action::ToggleLogY, &["y"]),
    (Action::ToggleZoom, &["z"]),
    (Action::ToggleLayers, &["L"]),
    (Action::Overlay, &["o"]),
    (Action::PrevEpoch, &["["]),
    (Action::NextEpoch, &["]"]),
    (Action::RegisterEpoch, &["R"]),
    (Action::Hardest, &["w"]),
    (Action::Disagree, &["v"]),
];

impl Default for Keymap {
    fn default() -> Self {
        let bindings = DEFAULTS
            .iter()
            .flat_map(|(action, keys)| {
                keys.iter()
                    .filter_map(move |k| Key::parse(k).ok().map(|k| (k, *action)))
            })
            .collect();
        Self { bindings }
    }
}

impl Keymap {
    /// The action bound to a key event, if any.
    pub fn action_for(&self, event: &KeyEvent) -> Option<Action> {
        let key = Key::from_event(event);
        self.bindings.iter().find(|(k, _)| *k == key).map(|(_, a)| *a)
    }

    /// The keys bound to `action`, in binding order.
    pub fn keys_for(&self, action: Action) -> Vec<Key> {
        self.bindings
            .iter()
            .filter(|(_, a)| *a == action)
            .map(|(k, _)| *k)
            .collect()
    }

    /// The first key of `action` as text, for hints (`?` when unbound).
    pub fn hint(&self, action: Action) -> String {
        self.keys_for(action)
            .first()
            .map_or_else(|| "?".to_owned(), Key::to_string)
    }

    /// Applies `[keymap]` overrides: each named action gets exactly the listed keys, and
    /// those keys leave whatever they were bound to before. Returns one message per problem.
    pub fn apply_overrides(&mut self, overrides: &BTreeMap<String, Vec<String>>) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, keys) in overrides {
            let Some(action) = Action::from_name(name) else {
                problems.push(format!("[keymap] unknown action '{name}'"));
                continue;
            };
            let parsed: Vec<Key> = keys
                .iter()
                .filter_map(|k| {
                    Key::parse(k)
                        .map_err(|e| problems.push(format!("[keymap] {name}: {e}")))
                        .ok()
                })
                .collect();
            self.bindings.retain(|(k, a)| *a != action && !parsed.contains(k));
            self.bindings.extend(parsed.into_iter().map(|k| (k, action)));
        }
        problems
    }

    /// `(keys, action)` for every action, for the help screen.
    pub fn help_rows(&self) -> Vec<(String, Action)> {
        Action::ALL
            .iter()
            .map(|a| {
                let keys: Vec<String> = self.keys_for(*a).iter().map(Key::to_string).collect();
                (keys.join(" "), *a)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn defaults_resolve_and_shift_is_implied() {
        let map = Keymap::default();
        assert_eq!(
            map.action_for(&key(KeyCode::Char('q'), KeyModifiers::NONE)),
            Some(Action::Quit)
        );
        assert_eq!(
            map.action_for(&key(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Action::Bottom)
        );
        assert_eq!(
            map.action_for(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(
            map.action_for(&key(KeyCode::BackTab, KeyModifiers::SHIFT)),
            Some(Action::PrevScreen)
        );
        assert_eq!(DEFAULTS.len(), Action::ALL.len(), "every action has a default key");
    }

    #[test]
    fn overrides_move_keys_and_report_problems() {
        let mut map = Keymap::default();
        let mut o = BTreeMap::new();
        o.insert("cancel-job".to_owned(), vec!["x".to_owned(), "d".to_owned()]);
        o.insert("nope".to_owned(), vec!["z".to_owned()]);
        o.insert("help".to_owned(), vec!["ctrl-zz".to_owned()]);
        let problems = map.apply_overrides(&o);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(
            map.action_for(&key(KeyCode::Char('d'), KeyModifiers::NONE)),
            Some(Action::CancelJob)
        );
        assert_eq!(map.action_for(&key(KeyCode::Char('c'), KeyModifiers::NONE)), None);
        assert_eq!(map.hint(Action::CancelJob), "x");
        assert!(map.keys_for(Action::Help).is_empty());
    }
}
