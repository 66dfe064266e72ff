//! The drill-down from a version's evaluation: a samples list (one confusion-matrix cell, the
//! hardest rows, or the rows two versions disagree on), kilnd's answer to it, and the sample
//! open beside it with its image encoded for this terminal.
//!
//! Answers are matched against what is on screen: one that arrives after the user moved on
//! (another cell, another sort, another sample) is dropped.

use kiln_core::client::ClientError;
use kiln_core::inspect::{InspectQuery, Inspection, SampleDetail, SampleInput, SampleOrder, SampleView};
use kiln_core::names::Name;

use crate::tui::event::DaemonMsg;
use crate::tui::graphics::{Graphics, Picture};
use crate::tui::request::Request;

/// Rows the hardest-samples list asks for.
pub const HARDEST: usize = 50;

/// Something asked of kilnd: on its way, here, or refused (why, for the pane).
#[derive(Debug, Clone, PartialEq)]
pub enum Loadable<T> {
    Loading,
    Ready(T),
    Failed(String),
}

/// Which rows of an evaluation a samples list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleSet {
    /// One confusion-matrix cell, as class indexes.
    Cell { truth: usize, predicted: usize },
    /// The rows of highest loss.
    Hardest,
    /// The rows where version `other` of the same model answers otherwise.
    Disagree { other: u32 },
}

impl SampleSet {
    /// The inspect query for this set in `order`.
    pub fn query(self, order: SampleOrder) -> InspectQuery {
        let mut query = InspectQuery {
            sort: Some(order),
            ..InspectQuery::default()
        };
        match self {
            SampleSet::Cell { truth, predicted } => query.cell = Some(format!("{truth},{predicted}")),
            SampleSet::Hardest => query.worst = Some(HARDEST),
            SampleSet::Disagree { other } => query.disagree = Some(other),
        }
        query
    }

    /// The order a fresh list starts in: the hardest by loss, the others by confidence.
    pub fn first_order(self) -> SampleOrder {
        match self {
            SampleSet::Hardest => SampleOrder::Loss,
            _ => SampleOrder::Confidence,
        }
    }
}

/// A samples list of `model@version`'s latest evaluation.
#[derive(Debug, Clone)]
pub struct SamplesList {
    pub model: Name,
    pub version: u32,
    pub set: SampleSet,
    pub order: SampleOrder,
    pub answer: Loadable<Inspection>,
    pub selected: usize,
}

impl SamplesList {
    /// The query this list is (or was) fetched with.
    pub fn query(&self) -> InspectQuery {
        self.set.query(self.order)
    }

    /// The request that fetches it.
    pub fn request(&self) -> Request {
        Request::Inspect {
            model: self.model.clone(),
            version: self.version,
            query: self.query(),
        }
    }

    /// The samples, once kilnd answered.
    pub fn samples(&self) -> &[SampleView] {
        match &self.answer {
            Loadable::Ready(inspection) => &inspection.samples,
            _ => &[],
        }
    }

    /// The class names of the answer (empty for ratings, or before it).
    pub fn classes(&self) -> &[String] {
        match &self.answer {
            Loadable::Ready(inspection) => &inspection.classes,
            _ => &[],
        }
    }
}

/// The sample open beside the list.
#[derive(Debug, Clone)]
pub struct OpenSample {
    pub index: u32,
    pub answer: Loadable<SampleDetail>,
    /// An image sample's picture, encoded for this terminal, or why it cannot be drawn.
    pub picture: Option<Result<Picture, String>>,
}

/// The drill-down's state; nothing is open until a list is asked for.
#[derive(Debug, Clone, Default)]
pub struct InspectState {
    /// How this terminal draws images (decided at start-up).
    pub graphics: Graphics,
    pub list: Option<SamplesList>,
    pub sample: Option<OpenSample>,
}

impl InspectState {
    /// Opens a samples list of `model@version`; returns the request that fills it.
    pub fn open(&mut self, model: Name, version: u32, set: SampleSet) -> Request {
        let list = SamplesList {
            model,
            version,
            set,
            order: set.first_order(),
            answer: Loadable::Loading,
            selected: 0,
        };
        let request = list.request();
        self.list = Some(list);
        self.sample = None;
        request
    }

    /// Closes the list and the sample.
    pub fn close(&mut self) {
        self.list = None;
        self.sample = None;
    }

    /// Sorts the list the other way (by confidence ⇄ by loss); kilnd sorts, so it is fetched
    /// again. Returns the new order and the request.
    pub fn toggle_order(&mut self) -> Option<(SampleOrder, Request)> {
        let list = self.list.as_mut()?;
        list.order = match list.order {
            SampleOrder::Confidence => SampleOrder::Loss,
            SampleOrder::Loss => SampleOrder::Confidence,
        };
        list.answer = Loadable::Loading;
        list.selected = 0;
        Some((list.order, list.request()))
    }

    /// Moves the list's selection by `delta` rows.
    pub fn move_selection(&mut self, delta: isize) {
        if let Some(list) = self.list.as_mut() {
            let last = list.samples().len().saturating_sub(1) as isize;
            list.selected = (list.selected as isize + delta).clamp(0, last.max(0)) as usize;
        }
    }

    /// The selected row of the list.
    pub fn selected(&self) -> Option<&SampleView> {
        let list = self.list.as_ref()?;
        list.samples().get(list.selected)
    }

    /// Opens the selected sample; returns the request that fetches it (`None` when the
    /// list is empty or still loading).
    pub fn open_sample(&mut self) -> Option<Request> {
        let index = self.selected()?.index;
        let list = self.list.as_ref()?;
        let request = Request::Sample {
            model: list.model.clone(),
            version: list.version,
            index,
        };
        self.sample = Some(OpenSample {
            index,
            answer: Loadable::Loading,
            picture: None,
        });
        Some(request)
    }

    /// Takes kilnd's answer to an inspect or sample request, if it is still wanted.
    pub fn take_answer(&mut self, msg: DaemonMsg) {
        match msg {
            DaemonMsg::Inspected {
                model,
                version,
                query,
                inspection,
            } => {
                if let Some(list) = self.list.as_mut().filter(|l| l.is(&model, version, &query)) {
                    list.answer = Loadable::Ready(*inspection);
                    list.selected = 0;
                }
            }
            DaemonMsg::SampleLoaded { model, version, detail } => {
                let wanted = self
                    .list
                    .as_ref()
                    .is_some_and(|l| l.model == model && l.version == version);
                let Some(open) = self
                    .sample
                    .as_mut()
                    .filter(|s| wanted && s.index == detail.sample.index)
                else {
                    return;
                };
                open.picture = match &detail.input {
                    SampleInput::Image {
                        channels,
                        height,
                        width,
                        pixels,
                    } => Some(self.graphics.picture(*channels, *height, *width, pixels)),
                    _ => None,
                };
                open.answer = Loadable::Ready(*detail);
            }
            _ => {}
        }
    }

    /// A request of the drill-down failed: the pane that waited for it says why.
    pub fn request_failed(&mut self, request: &Request, error: &ClientError) {
        match request {
            Request::Inspect { model, version, query } => {
                if let Some(list) = self.list.as_mut().filter(|l| l.is(model, *version, query)) {
                    list.answer = Loadable::Failed(explain(error));
                }
            }
            Request::Sample { index, .. } => {
                if let Some(open) = self.sample.as_mut().filter(|s| s.index == *index) {
                    open.answer = Loadable::Failed(explain(error));
                }
            }
            _ => {}
        }
    }
}

impl SamplesList {
    fn is(&self, model: &Name, version: u32, query: &InspectQuery) -> bool {
        self.model == *model && self.version == version && self.query() == *query
    }
}

/// What to tell the user about a failed drill-down request: kilnd's own message (it says
/// what to run), or that this kilnd predates the drill-down.
pub fn explain(error: &ClientError) -> String {
    match error {
        ClientError::Http { status: 404, message } if message.contains("no such route") => {
            "this kilnd cannot show samples (no inspect route): update and restart it".to_owned()
        }
        ClientError::Http { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
