//! Contexts in [`App`]: `:ctx` / `:ctx NAME`, `enter` on the contexts screen, and what the
//! loop reports while a context's session opens.
//!
//! Switching forgets everything the old box showed: the [`App`] is rebuilt (theme, keymap,
//! read-only mode, the terminal's graphics and the contexts screen survive), so models, jobs,
//! telemetry and serving data of two boxes never mix, and its `generation` is bumped, so what
//! the old connection still sends is dropped. The loop does the rest ([`Effect::SwitchContext`]):
//! it ends the old event stream and session and opens the new one off the UI thread.

use super::action::{Action, Effect, Screen};
use super::app::{App, Connection};
use kiln_core::context::LOCAL;

impl App {
    /// `:ctx` lists the contexts; `:ctx NAME` switches to one (`local`: this box).
    pub(super) fn ctx_command(&mut self, name: &str) -> Vec<Effect> {
        if name.is_empty() {
            return self.apply(Action::ShowContexts);
        }
        if !self.contexts.knows(name) {
            let problem = self
                .contexts
                .problem
                .as_ref()
                .map_or_else(String::new, |p| format!("; config.toml: {p}"));
            self.complain(format!(
                "unknown context '{name}' (known: {}){problem}",
                self.contexts.names().join(", ")
            ));
            return Vec::new();
        }
        self.switch_context(name)
    }

    /// `enter` on the contexts screen: switch to the selected context.
    pub(super) fn switch_to_selected(&mut self) -> Vec<Effect> {
        match self.contexts.current().map(|r| r.entry.name.clone()) {
            Some(name) => self.switch_context(&name),
            None => Vec::new(),
        }
    }

    /// Forgets what the current box showed and asks the loop to connect to `name`.
    pub fn switch_context(&mut self, name: &str) -> Vec<Effect> {
        if name == self.context {
            self.say(format!("already on context {name}"));
            return Vec::new();
        }
        let mut fresh = App::new(self.theme.clone(), self.keymap.clone(), self.readonly);
        fresh.context = name.to_owned();
        fresh.generation = self.generation + 1;
        fresh.contexts = std::mem::take(&mut self.contexts);
        fresh.models.inspect.graphics = self.models.inspect.graphics.clone();
        fresh.screen = match self.screen {
            Screen::Contexts => Screen::Models,
            other => other,
        };
        *self = fresh;
        self.say(format!("connecting to {name}…"));
        vec![Effect::SwitchContext {
            name: name.to_owned(),
            generation: self.generation,
        }]
    }

    /// The current context's session opened: the loop attaches to it (its event stream
    /// reports `Connected`, which refetches everything).
    pub(super) fn context_opened(&mut self, name: String) -> Vec<Effect> {
        if name != self.context {
            return Vec::new();
        }
        self.say(format!("connected to {name}"));
        vec![Effect::AttachContext {
            name,
            generation: self.generation,
        }]
    }

    /// The current context could not be opened; the loop tries again.
    pub(super) fn context_unreachable(&mut self, name: &str, problem: String) -> Vec<Effect> {
        if name == self.context {
            self.connection = Connection::Down(problem);
        }
        Vec::new()
    }

    /// While the contexts screen shows, every tick surveys them again.
    pub(super) fn survey_tick(&mut self) -> Vec<Effect> {
        if self.screen == Screen::Contexts {
            vec![Effect::SurveyContexts]
        } else {
            Vec::new()
        }
    }

    /// Whether the console shows another box's kilnd.
    pub fn remote(&self) -> bool {
        self.context != LOCAL
    }
}
