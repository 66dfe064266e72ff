//! Key handling for [`App`]: modal layers first (dialogs, palette, form, filter input), then
//! the keymap's [`Action`]s, dispatched to the current screen.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::{Action, Effect, Pending, Screen};
use super::app::{App, Overlay};
use super::deploy::{Confirmed, DeployDialog, FORCE_KEY};
use super::form::LaunchForm;
use super::request::Request;
use super::state::models::ModelsFocus;
use super::state::studies::StudiesFocus;

/// Rows moved by page up / page down.
const PAGE: isize = 10;

fn requests(rs: Vec<Request>) -> Vec<Effect> {
    rs.into_iter().map(Effect::Request).collect()
}

impl App {
    pub(super) fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        self.message = None;
        if let Some(overlay) = self.overlay.take() {
            return self.on_overlay_key(overlay, key);
        }
        if let Some(text) = self.filter_input.take() {
            return self.on_filter_key(text, key);
        }
        match self.keymap.action_for(&key) {
            Some(action) => self.apply(action),
            None => Vec::new(),
        }
    }

    fn on_overlay_key(&mut self, overlay: Overlay, key: KeyEvent) -> Vec<Effect> {
        let action = self.keymap.action_for(&key);
        match overlay {
            Overlay::Help { scroll } => {
                let scroll = match action {
                    Some(Action::Down) => scroll.saturating_add(1),
                    Some(Action::Up) => scroll.saturating_sub(1),
                    Some(Action::PageDown) => scroll.saturating_add(PAGE as u16),
                    Some(Action::PageUp) => scroll.saturating_sub(PAGE as u16),
                    _ => return Vec::new(),
                };
                self.overlay = Some(Overlay::Help { scroll });
                Vec::new()
            }
            Overlay::Palette(text) => self.on_palette_key(text, key),
            Overlay::Confirm(pending) => self.on_confirm_key(pending, key),
            Overlay::Deploy(dialog) => self.on_deploy_key(dialog, key),
            Overlay::Form(form) => self.on_form_key(form, key),
            Overlay::SpecPath(text) => self.on_spec_path_key(text, key),
        }
    }

    /// Typing a study spec's path; enter hands it to the request runner, which reads it.
    fn on_spec_path_key(&mut self, mut text: String, key: KeyEvent) -> Vec<Effect> {
        match key.code {
            KeyCode::Esc => return Vec::new(),
            KeyCode::Enter if text.trim().is_empty() => self.complain("type the path of a study spec (.toml)"),
            KeyCode::Enter => {
                let path = text.trim();
                self.say(format!("starting the study in {path}…"));
                let path = path.into();
                return vec![Effect::Request(Request::CreateStudy { path })];
            }
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => text.push(c),
            _ => {}
        }
        self.overlay = Some(Overlay::SpecPath(text));
        Vec::new()
    }

    fn on_confirm_key(&mut self, pending: Pending, key: KeyEvent) -> Vec<Effect> {
        match key.code {
            KeyCode::Enter | KeyCode::Char('y') => {
                self.say("sent; waiting for kilnd…");
                vec![Effect::Request(pending.request())]
            }
            KeyCode::Esc | KeyCode::Char('n') => {
                self.say("not done");
                Vec::new()
            }
            _ => {
                self.overlay = Some(Overlay::Confirm(pending));
                Vec::new()
            }
        }
    }

    /// The deploy dialog: move between the modes, enter deploys (once the gates passed), the
    /// force key deploys past a failed gate, esc cancels.
    fn on_deploy_key(&mut self, mut dialog: DeployDialog, key: KeyEvent) -> Vec<Effect> {
        let confirmed = match (key.code, self.keymap.action_for(&key)) {
            (KeyCode::Esc | KeyCode::Char('n'), _) => {
                self.say("not deployed");
                return Vec::new();
            }
            (KeyCode::Enter | KeyCode::Char('y'), _) => dialog.confirm(),
            (KeyCode::Char(FORCE_KEY), _) => dialog.force(),
            (KeyCode::BackTab, _) | (_, Some(Action::Up | Action::FocusPrev)) => {
                dialog.move_mode(-1);
                Confirmed::Wait
            }
            (KeyCode::Tab, _) | (_, Some(Action::Down | Action::FocusNext)) => {
                dialog.move_mode(1);
                Confirmed::Wait
            }
            _ => Confirmed::Wait,
        };
        self.overlay = Some(Overlay::Deploy(dialog));
        requests(self.deploy_confirmed(confirmed))
    }

    fn on_palette_key(&mut self, mut text: String, key: KeyEvent) -> Vec<Effect> {
        match key.code {
            KeyCode::Esc => return Vec::new(),
            KeyCode::Enter => return self.run_command(text.trim()),
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => text.push(c),
            _ => {}
        }
        self.overlay = Some(Overlay::Palette(text));
        Vec::new()
    }

    fn on_form_key(&mut self, mut form: LaunchForm, key: KeyEvent) -> Vec<Effect> {
        match key.code {
            KeyCode::Esc => return Vec::new(),
            KeyCode::Enter => match form.request().and_then(|job| self.check_job(job)) {
                Ok(job) => {
                    self.say(format!("launching {}…", form.what()));
                    return vec![Effect::Request(Request::SubmitJob(Box::new(job)))];
                }
                Err(e) => form.error = Some(e),
            },
            KeyCode::Up | KeyCode::BackTab => form.move_focus(-1),
            KeyCode::Down | KeyCode::Tab => form.move_focus(1),
            KeyCode::Left => form.cycle(-1),
            KeyCode::Right | KeyCode::Char(' ') => form.cycle(1),
            KeyCode::Backspace => form.backspace(),
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => form.type_char(c),
            _ => {}
        }
        self.overlay = Some(Overlay::Form(form));
        Vec::new()
    }

    fn on_filter_key(&mut self, mut text: String, key: KeyEvent) -> Vec<Effect> {
        match key.code {
            KeyCode::Esc => text.clear(),
            KeyCode::Enter => {
                self.set_filter(&text);
                return self.wanted_here();
            }
            KeyCode::Backspace => {
                text.pop();
                self.filter_input = Some(text.clone());
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                text.push(c);
                self.filter_input = Some(text.clone());
            }
            _ => self.filter_input = Some(text.clone()),
        }
        self.set_filter(&text);
        Vec::new()
    }

    /// Applies the filter to the current screen's list (per keystroke).
    pub fn set_filter(&mut self, text: &str) {
        match self.screen {
            Screen::Models => self.models.set_filter(text),
            Screen::Jobs => {
                self.jobs.filter = text.to_owned();
                self.jobs.selected = 0;
            }
            Screen::Gpu | Screen::Serving | Screen::Studies | Screen::Contexts => {}
        }
    }

    /// Runs a `:` command.
    pub fn run_command(&mut self, command: &str) -> Vec<Effect> {
        let (verb, arg) = command.split_once(' ').map_or((command, ""), |(v, a)| (v, a.trim()));
        match verb {
            "q" | "q!" | "quit" => vec![Effect::Quit],
            "models" | "m" => self.apply(Action::ShowModels),
            "jobs" | "j" => self.apply(Action::ShowJobs),
            "gpu" | "g" => self.apply(Action::ShowGpu),
            "serving" | "s" | "deployments" => self.apply(Action::ShowServing),
            "studies" | "study" | "tune" => self.apply(Action::ShowStudies),
            "ctx" | "context" | "contexts" => self.ctx_command(arg),
            "help" => self.apply(Action::Help),
            "train" => self.new_training(),
            "theme" if arg.is_empty() => {
                self.say(format!(
                    "theme {} (:theme dark|light|high-contrast|NAME)",
                    self.theme.name
                ));
                Vec::new()
            }
            "theme" => vec![Effect::LoadTheme(arg.to_owned())],
            // Every keymap action by its name too (`:register-epoch`), as the help lists them.
            _ => match Action::from_name(verb) {
                Some(action) if arg.is_empty() => self.apply(action),
                _ => {
                    self.complain(format!(
                        "unknown command ':{command}' (try :models :jobs :gpu :serving :studies :ctx [NAME] :theme NAME :q, or an action named in the help)"
                    ));
                    Vec::new()
                }
            },
        }
    }

    /// Carries out one keymap action.
    pub fn apply(&mut self, action: Action) -> Vec<Effect> {
        if self.screen == Screen::Models
            && let Some(effects) = self.apply_inspect_action(action)
        {
            return effects;
        }
        match action {
            Action::Quit => vec![Effect::Quit],
            Action::Help => self.open(Overlay::Help { scroll: 0 }),
            Action::Palette => self.open(Overlay::Palette(String::new())),
            Action::Filter => {
                self.filter_input = Some(self.current_filter());
                Vec::new()
            }
            Action::Back => self.back(),
            Action::NextScreen => self.show(self.screen.cycle(1)),
            Action::PrevScreen => self.show(self.screen.cycle(-1)),
            Action::ShowModels => self.show(Screen::Models),
            Action::ShowJobs => self.show(Screen::Jobs),
            Action::ShowGpu => self.show(Screen::Gpu),
            Action::ShowServing => self.show(Screen::Serving),
            Action::ShowStudies => self.show(Screen::Studies),
            Action::ShowContexts => self.show(Screen::Contexts),
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-PAGE),
            Action::PageDown => self.move_selection(PAGE),
            Action::Top => self.move_selection(-(1 << 30)),
            Action::Bottom => self.move_selection(1 << 30),
            Action::Refresh if self.screen == Screen::Contexts => vec![Effect::SurveyContexts],
            Action::Refresh => requests(self.refetch_all()),
            other => self.apply_screen_action(other),
        }
    }

    fn apply_screen_action(&mut self, action: Action) -> Vec<Effect> {
        if self.screen == Screen::Studies
            && let Some(effects) = self.apply_studies_action(action)
        {
            return effects;
        }
        match action {
            Action::Select => self.select(),
            Action::FocusNext => self.focus(1),
            Action::FocusPrev => self.focus(-1),
            Action::MarkCompare => {
                if let Some(text) = self.models.toggle_compare() {
                    self.say(text);
                }
                requests(self.models.wanted())
            }
            Action::Deploy => self.deploy(),
            Action::DeleteVersion => self.delete_version(),
            Action::Rollback => self.rollback(),
            Action::TryRequest => self.try_request(),
            Action::NewTraining => self.new_training(),
            Action::NewEval => self.new_eval(),
            Action::CancelJob => self.cancel_job(),
            Action::Promote if self.screen == Screen::Serving => self.promote_canary(),
            Action::Promote => {
                self.complain("select a trial on the studies screen (5) and press promote there");
                Vec::new()
            }
            Action::AbortCanary => self.abort_canary(),
            Action::PrevEpoch => self.move_epoch(-1),
            Action::NextEpoch => self.move_epoch(1),
            Action::RegisterEpoch => self.register_epoch(),
            Action::ToggleSmoothing => toggle(&mut self.jobs.chart.smoothing),
            Action::ToggleLogY => toggle(&mut self.jobs.chart.log_y),
            Action::ToggleLayers => toggle(&mut self.jobs.chart.layers),
            Action::ToggleZoom => {
                use super::series::Zoom;
                self.jobs.chart.zoom = match self.jobs.chart.zoom {
                    Zoom::Full => Zoom::Recent,
                    Zoom::Recent => Zoom::Full,
                };
                Vec::new()
            }
            Action::Overlay if self.screen == Screen::Models => self.optimize(),
            Action::Overlay => {
                if let Some(text) = self.jobs.toggle_overlay() {
                    self.say(text);
                }
                requests(self.jobs.wanted(false, false))
            }
            _ => Vec::new(),
        }
    }

    /// What the shared keys mean on the studies screen (`None`: the same as elsewhere).
    fn apply_studies_action(&mut self, action: Action) -> Option<Vec<Effect>> {
        Some(match action {
            Action::ToggleSmoothing => {
                let order = self.studies.toggle_sort();
                self.say(format!("trials {order}"));
                requests(self.trial_wanted(false))
            }
            Action::Promote => self.promote_trial(),
            Action::CancelJob => self.stop_study(),
            Action::Rollback => self.resume_study(),
            Action::NewTraining => self.new_study(),
            _ => return None,
        })
    }

    fn open(&mut self, overlay: Overlay) -> Vec<Effect> {
        self.overlay = Some(overlay);
        Vec::new()
    }

    fn current_filter(&self) -> String {
        match self.screen {
            Screen::Models => self.models.filter.clone(),
            Screen::Jobs => self.jobs.filter.clone(),
            _ => String::new(),
        }
    }

    fn show(&mut self, screen: Screen) -> Vec<Effect> {
        self.screen = screen;
        let mut out = self.wanted_here();
        match screen {
            Screen::Gpu if self.gpu.availability.is_none() => out.push(Effect::Request(Request::Telemetry)),
            Screen::Serving if self.serving.deployments.is_none() => {
                out.push(Effect::Request(Request::Deployments));
                out.push(Effect::Request(Request::Canaries));
                out.push(Effect::Request(Request::Journal));
            }
            Screen::Studies => out.push(Effect::Request(Request::Studies)),
            Screen::Contexts => out.push(Effect::SurveyContexts),
            _ => {}
        }
        out
    }

    fn wanted_here(&mut self) -> Vec<Effect> {
        match self.screen {
            Screen::Models => requests(self.models.wanted()),
            Screen::Jobs => requests(self.jobs.wanted(false, false)),
            Screen::Studies => requests(self.trial_wanted(false)),
            _ => Vec::new(),
        }
    }

    fn back(&mut self) -> Vec<Effect> {
        match self.screen {
            Screen::Models if self.models.focus != ModelsFocus::Models => {
                self.models.focus = match self.models.focus {
                    ModelsFocus::Detail => ModelsFocus::Versions,
                    _ => ModelsFocus::Models,
                };
            }
            Screen::Studies if self.studies.focus == StudiesFocus::Trials => self.studies.toggle_focus(),
            _ if !self.current_filter().is_empty() => self.set_filter(""),
            Screen::Models if self.models.compare.is_some() => self.models.compare = None,
            _ => {}
        }
        Vec::new()
    }

    fn move_selection(&mut self, delta: isize) -> Vec<Effect> {
        match self.screen {
            Screen::Models => self.models.move_selection(delta),
            Screen::Jobs => self.jobs.move_selection(delta),
            Screen::Serving => self.serving.move_selection(delta),
            Screen::Studies => self.studies.move_selection(delta),
            Screen::Contexts => self.contexts.move_selection(delta),
            Screen::Gpu => {}
        }
        self.wanted_here()
    }

    fn focus(&mut self, delta: i8) -> Vec<Effect> {
        match self.screen {
            Screen::Models => {
                self.models.focus = match (self.models.focus, delta > 0) {
                    (ModelsFocus::Models, true) => ModelsFocus::Versions,
                    (drilled @ (ModelsFocus::Matrix | ModelsFocus::Samples | ModelsFocus::Sample), _) => drilled,
                    (ModelsFocus::Versions, true) | (ModelsFocus::Detail, true) => ModelsFocus::Detail,
                    (ModelsFocus::Detail, false) => ModelsFocus::Versions,
                    (_, false) => ModelsFocus::Models,
                };
            }
            Screen::Studies => self.studies.toggle_focus(),
            _ => {}
        }
        self.wanted_here()
    }

    fn select(&mut self) -> Vec<Effect> {
        if self.screen == Screen::Models && self.models.is_empty_registry() {
            return self.train_first();
        }
        match self.screen {
            Screen::Models => self.focus(1),
            Screen::Serving => self.try_request(),
            Screen::Contexts => self.switch_to_selected(),
            Screen::Studies if self.studies.focus == StudiesFocus::Studies => self.focus(1),
            _ => Vec::new(),
        }
    }
}

fn toggle(flag: &mut bool) -> Vec<Effect> {
    *flag = !*flag;
    Vec::new()
}
